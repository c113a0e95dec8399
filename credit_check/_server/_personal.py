"""Natural persons' data at rest in the sandbox: a person is found by a keyed hash of the
id number, never by the number itself, and whatever names a person (an entry, a name, a
feedback record) is sealed with AES-256-GCM under a key derived from the data key.
"""

from __future__ import annotations

import hashlib
import hmac

from credit_check._crypto import FieldCipher
from credit_check._exceptions import ConfigurationError
from credit_check._ids import detect_kind

PERSON_TAG = "p:"


class StoreDataError(RuntimeError):
    """Stored data does not decrypt: the data key changed, or the database is damaged."""


class PersonalData:
    """Keyed hashes and sealing with one data key (32 bytes)."""

    def __init__(self, data_key: bytes) -> None:
        def derive(purpose: bytes) -> bytes:
            return hmac.new(data_key, b"credit-check/sandbox/" + purpose, hashlib.sha256).digest()

        self._index_key = derive(b"index/v1")
        self._case_key = derive(b"case/v1")
        self._cipher = FieldCipher(derive(b"seal/v1"))
        # Stored in the database, so that a wrong data key is refused at start-up instead
        # of every sealed row failing later.
        self.check_value = derive(b"check/v1").hex()[:32]

    def subject_key(self, subject_id: str, kind: str | None = None) -> str:
        """How a subject is indexed: an organisation by its (public) USCC, a natural
        person by ``p:`` + HMAC-SHA256 of the id number under the data key."""
        if (kind or detect_kind(subject_id)) == "organization":
            return subject_id
        return PERSON_TAG + hmac.new(self._index_key, subject_id.encode(),
                                     hashlib.sha256).hexdigest()

    def case_key(self, department: str, case_ref: str) -> str:
        """How a case is kept in clear for the coverage figures: a keyed hash of the
        department and the case's reference, so a case id (which may embed anything a
        department chose) is never stored in clear, and equal cases still match."""
        message = department.encode() + b"\x00" + case_ref.encode()
        return hmac.new(self._case_key, message, hashlib.sha256).hexdigest()[:32]

    def seal(self, plaintext: bytes, where: str) -> bytes:
        """Encrypt, bound to ``where`` (the row it belongs to), so that a sealed value
        moved to another row no longer opens."""
        return self._cipher.encrypt(plaintext, where.encode())

    def open(self, blob: bytes, where: str) -> bytes:
        """Decrypt a value sealed for ``where``.

        Raises:
            StoreDataError: the data key is not the one it was sealed with, or the value
                was damaged or moved.
        """
        try:
            return self._cipher.decrypt(bytes(blob), where.encode())
        except ConfigurationError:
            raise StoreDataError(
                f"sealed data of {where.split(':')[0]} does not decrypt with the sandbox data "
                "key (CREDIT_CHECK_SANDBOX_DATA_KEY or the .data-key file beside the "
                "database): the key was changed or the database is damaged") from None
