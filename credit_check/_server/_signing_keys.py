"""The service's signing keys over time (DESIGN §9.4): which key signed when, so that
receipts signed before a rotation stay verifiable (``GET /v1/keys`` lists them all). The
SQL is plain and shared by both store engines.

A rotation (``credit-check serve rotate-key NEW``) closes the current key's validity,
records the new key as current and re-seals the department keys' feedback keys, which
are sealed with a key derived from the signing key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from credit_check._crypto import FieldCipher, Signer
from credit_check._receipts import key_id
from credit_check._server._store import StoreError, now_cst

logger = logging.getLogger("credit_check.sandbox")

TABLE = ("CREATE TABLE IF NOT EXISTS signing_keys (kid TEXT PRIMARY KEY, "
         "public_key TEXT NOT NULL, valid_from TEXT NOT NULL, valid_until TEXT)")


def key_seal(signer: Signer) -> FieldCipher:
    """The cipher that seals the department keys' feedback keys (bound to the signer)."""
    return FieldCipher(hmac.new(signer.private_bytes(), b"credit-check/sandbox/keys",
                                hashlib.sha256).digest())


def ensure(conn: Any, public_key: str) -> None:
    """Make the table (an older database has none) and record the first key; a key the
    database does not know is logged, never recorded silently (only a rotation does)."""
    conn.execute(TABLE)
    kid = key_id(public_key)
    rows = conn.execute("SELECT kid FROM signing_keys").fetchall()
    if not rows:
        conn.execute("INSERT INTO signing_keys (kid, public_key, valid_from, valid_until) "
                     "VALUES (?, ?, ?, NULL) ON CONFLICT (kid) DO NOTHING",
                     (kid, public_key, now_cst().isoformat()))
    elif kid not in {r[0] for r in rows}:
        logger.warning("this instance signs with key %s, which the database has no record "
                       "of; change keys with 'credit-check serve rotate-key'", kid)


def listed(conn: Any) -> list[dict[str, Any]]:
    """Every key, the current one first, then the others newest first."""
    rows = conn.execute("SELECT kid, public_key, valid_from, valid_until FROM signing_keys "
                        "ORDER BY valid_until IS NULL DESC, valid_from DESC").fetchall()
    return [{"kid": r[0], "public_key": r[1], "valid_from": r[2], "valid_until": r[3]}
            for r in rows]


def rotate(conn: Any, old: Signer, new: Signer) -> bool:
    """Make ``new`` the current key in the caller's transaction; False when it is the
    current key already (a rotation run twice). Re-seals every department key.

    Raises:
        StoreError: ``new`` signed here before and was retired (a key is never reused).
    """
    conn.execute(TABLE)
    new_kid, old_kid = key_id(new.public_key), key_id(old.public_key)
    found = conn.execute("SELECT valid_until FROM signing_keys WHERE kid = ?",
                         (new_kid,)).fetchone()
    if found is not None:
        if found[0] is None:
            return False
        raise StoreError(f"key {new_kid} was retired on {found[0]}; make a new key with "
                         "'credit-check serve keygen FILE'")
    now = now_cst().isoformat()
    conn.execute("INSERT INTO signing_keys (kid, public_key, valid_from, valid_until) VALUES "
                 "(?, ?, ?, NULL) ON CONFLICT (kid) DO NOTHING",
                 (old_kid, old.public_key, now))
    conn.execute("UPDATE signing_keys SET valid_until = ? WHERE valid_until IS NULL", (now,))
    conn.execute("INSERT INTO signing_keys (kid, public_key, valid_from, valid_until) "
                 "VALUES (?, ?, ?, NULL)", (new_kid, new.public_key, now))
    before, after = key_seal(old), key_seal(new)
    rows = conn.execute("SELECT key_id, feedback_key FROM keys").fetchall()
    conn.executemany("UPDATE keys SET feedback_key = ? WHERE key_id = ?", [
        (after.encrypt(before.decrypt(bytes.fromhex(sealed))).hex(), key)
        for key, sealed in rows])
    return True
