"""Importing journals into the delivery store: each new intact frame becomes a stored record
(its canonical JSON, HMAC and record id made here, off the request path), the journal's
offset moving in the same transaction, so a record is imported exactly once whatever
moment the importer is killed at. Records are delivered from the store in the order they
were imported.

A journal whose writer is gone (its lock is free) is deleted once imported. A frame that
does not decrypt with the current key, or damage inside a journal, is kept in the store's
quarantine with an ERROR — counted in ``status()``, never dropped, retried by
``credit-check outbox salvage``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from credit_check._crypto import FieldCipher
from credit_check._exceptions import CreditCheckError
from credit_check._outbox._codec import record_data, signed_text
from credit_check._outbox._journal import AAD, HIDDEN, SUFFIX, JournalFile, journals, scan
from credit_check._outbox._store import Store

logger = logging.getLogger("credit_check.outbox")

READ_CHUNK = 1 << 20
UNDECRYPTABLE = "cannot be decrypted with the current encryption key"


def store_row(data: dict[str, Any], hmac_key: bytes, cipher: FieldCipher, *, now: float
              ) -> tuple[Any, ...]:
    """A record's store row: clear columns, HMAC, encrypted canonical body."""
    body, mac = signed_text(data, hmac_key)
    record_id = data["record_id"]
    transaction = data.get("transaction") or {}
    return (record_id, data["kind"], data["decision_id"], transaction.get("case_id"),
            transaction.get("scenario"), data["outcome"], data["created_at"], now, mac,
            cipher.encrypt(body, record_id.encode()), 0.0, None)


class Importer:
    """Moves journal records into a :class:`Store`.

    Args:
        directory: the journal directory.
        store: the delivery store.
        cipher: the data directory's cipher (journals and store share it).
        hmac_key: ``feedback_key(api_key)``: each record's HMAC is made here.
    """

    def __init__(self, directory: Path, store: Store, cipher: FieldCipher, hmac_key: bytes
                 ) -> None:
        self.directory = directory
        self._store = store
        self._cipher = cipher
        self._hmac_key = hmac_key
        self.imported = 0

    def run(self, max_records: int = 5000) -> int:
        """Import what the journals hold (up to about ``max_records``); how many records."""
        claimed = 0
        offsets = self._store.journal_offsets()
        found = journals(self.directory)
        _remove_stale_hidden(self.directory)
        names = {p.name for p in found}
        for name in offsets.keys() - names:
            self._store.forget_journal(name)  # deleted after its offset was kept
        for path in found:
            if claimed >= max_records:
                break
            claimed += self._one(path, offsets.get(path.name, 0), max_records - claimed)
        self.imported += claimed
        return claimed

    def _one(self, path: Path, offset: int, budget: int) -> int:
        claimed = 0
        try:
            journal = JournalFile(path)
        except FileNotFoundError:
            return claimed
        with journal:
            # Decided before the size is read: a finished journal's size is final.
            finished = journal.check_finished()
            size = journal.size()
            while offset < size and claimed < budget:
                data = journal.read(offset, READ_CHUNK)
                found = scan(data, offset)
                if found.end == offset and len(data) < size - offset:
                    found = scan(data := journal.read(offset, size - offset), offset)
                if found.end == offset:
                    break  # the rest is a frame being written, or (finished) a torn one
                damaged = [(path.name, start, "damaged journal bytes",
                            data[start - offset : stop - offset])
                           for start, stop in found.skipped]
                if damaged:
                    logger.error("feedback journal %s: %d damaged stretch(es) of %d bytes "
                                 "skipped and kept aside (see 'credit-check outbox status')",
                                 path.name, len(damaged), sum(len(d[3]) for d in damaged))
                claimed += self._import(path.name, found.end, found.frames, damaged)
                offset = found.end
            if finished and (offset >= size or claimed < budget):
                if offset < size:
                    logger.warning(
                        "feedback journal %s ends with %d bytes of a record whose write never "
                        "completed (its process was killed mid-write, so that check never "
                        "returned)", path.name, size - offset)
                path.unlink(missing_ok=True)
                self._store.forget_journal(path.name)
        return claimed

    def _import(self, name: str, end: int, frames: Iterable[tuple[int, bytes]],
                damaged: list[tuple[str, int, str, bytes]]) -> int:
        now = time.time()
        rows: list[tuple[Any, ...]] = []
        held = list(damaged)
        for offset, payload in frames:
            try:
                data = record_data(self._cipher.decrypt(payload, AAD))
            except CreditCheckError:
                held.append((name, offset, UNDECRYPTABLE, payload))
                continue
            except ValueError as exc:
                held.append((name, offset, f"not a record this version reads: {exc}", payload))
                continue
            rows.append(store_row(data, self._hmac_key, self._cipher, now=now))
        undecryptable = sum(1 for h in held if h[2] == UNDECRYPTABLE)
        if undecryptable:
            logger.error("feedback journal %s: %d records cannot be decrypted with the current "
                         "encryption key (was the key changed or generated twice?); they are "
                         "kept aside, not delivered — see 'credit-check outbox status' and "
                         "'credit-check outbox salvage --key'", name, undecryptable)
        self._store.import_rows(name, end, rows, held)
        return len(rows)



def _remove_stale_hidden(directory: Path) -> None:
    # A writer killed between creating its journal and renaming it into view leaves an
    # empty hidden file behind; a live writer renames its own within microseconds.
    cutoff = time.time() - 60.0
    for path in directory.glob(f".*{SUFFIX}{HIDDEN}"):
        with contextlib.suppress(OSError):
            stat = path.stat()
            if stat.st_size == 0 and stat.st_mtime < cutoff:
                path.unlink()
