"""``credit-check outbox status|flush|run|salvage``: inspect the feedback outbox, deliver it
now, run the data directory's sender as its own process, or recover records.

Configuration comes from the environment, as for the Checker: ``CREDIT_CHECK_DATA_DIR``
(the outbox lives there), or ``CREDIT_CHECK_OUTBOX_URL`` for an outbox in PostgreSQL (then
the encryption key is needed for every action, ``status`` included); for ``flush``, ``run`` and ``salvage`` also
``CREDIT_CHECK_BASE_URL``, ``CREDIT_CHECK_API_KEY`` and the encryption key
(``CREDIT_CHECK_ENCRYPTION_KEY`` or the data directory's key file). ``status`` needs no key.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from credit_check._crypto import FieldCipher, feedback_key
from credit_check._datadir import KEY_FILE, DataDir
from credit_check._exceptions import ConfigurationError, OutboxError
from credit_check._outbox._journal import JOURNAL_DIR
from credit_check._outbox._outbox import Outbox
from credit_check._outbox._pg_outbox import PgOutbox
from credit_check._outbox._salvage import Salvaged, retry_quarantine, salvage
from credit_check._outbox._types import OUTBOX_FILE, OutboxStatus
from credit_check._settings import DEFAULT_DATA_DIR

EXIT_OK, EXIT_REMAINING, EXIT_CONFIG = 0, 1, 2


def outbox(args: argparse.Namespace) -> int:
    """Run one ``outbox`` action; the exit code of the command."""
    try:
        return {"status": _status, "flush": _flush, "run": _run,
                "salvage": _salvage}[args.action](args)
    except ConfigurationError as exc:
        print(f"credit-check: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OutboxError as exc:
        print(f"credit-check: error: {exc}", file=sys.stderr)
        return EXIT_REMAINING


def _data_dir() -> Path:
    path = Path(os.environ.get("CREDIT_CHECK_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    if not (path / OUTBOX_FILE).exists() and not (path / JOURNAL_DIR).exists():
        raise ConfigurationError(
            f"no feedback outbox in {str(path)!r}; set CREDIT_CHECK_DATA_DIR to the data "
            "directory your checkers use")
    return path


def _key_text(data_dir: Path) -> str | None:
    key_text = os.environ.get("CREDIT_CHECK_ENCRYPTION_KEY")
    if not key_text and not (data_dir / KEY_FILE).exists():
        # A freshly generated key could not decrypt a single stored record.
        raise ConfigurationError(
            "CREDIT_CHECK_ENCRYPTION_KEY: missing, and the data directory has no key file; "
            "set the key your checkers use")
    return key_text


def _service() -> tuple[str, str]:
    base_url = os.environ.get("CREDIT_CHECK_BASE_URL", "")
    api_key = os.environ.get("CREDIT_CHECK_API_KEY", "")
    if not base_url:
        raise ConfigurationError("CREDIT_CHECK_BASE_URL: missing; set it to the list service URL")
    if not api_key:
        raise ConfigurationError("CREDIT_CHECK_API_KEY: missing; set your department's API key")
    return base_url, api_key


def _outbox_url() -> str | None:
    return os.environ.get("CREDIT_CHECK_OUTBOX_URL") or None


def _open_pg(url: str, api_key: str) -> PgOutbox:
    from credit_check._pg import Database

    key_text = os.environ.get("CREDIT_CHECK_ENCRYPTION_KEY")
    if not key_text:
        raise ConfigurationError("CREDIT_CHECK_ENCRYPTION_KEY: needed with "
                                 "CREDIT_CHECK_OUTBOX_URL (the key every host seals with)")
    db = Database(url, what="outbox database", max_size=4)
    try:
        return PgOutbox(db, cipher=FieldCipher.from_text(key_text),
                        hmac_key=feedback_key(api_key), owns_db=True)
    except BaseException:
        db.close()
        raise


def _open(data_dir: Path, api_key: str) -> Outbox | PgOutbox:
    url = _outbox_url()
    if url:
        return _open_pg(url, api_key)
    cipher = DataDir(data_dir).cipher(_key_text(data_dir))
    return Outbox(data_dir, cipher=cipher, hmac_key=feedback_key(api_key))


def _status(args: argparse.Namespace) -> int:
    url = _outbox_url()
    if url:
        with _open_pg(url, "") as box:
            _print(box.status(), args.json)
        return EXIT_OK
    data_dir = _data_dir()
    # status reads clear columns and file sizes only: no key is needed, none is generated.
    with Outbox(data_dir, cipher=FieldCipher(os.urandom(32)), hmac_key=b"") as store:
        status = store.status()
    _print(status, args.json)
    return EXIT_OK


def _flush(args: argparse.Namespace) -> int:
    from credit_check._transport import Transport

    data_dir = _data_dir() if not _outbox_url() else Path()
    base_url, api_key = _service()
    transport = Transport(base_url, api_key)
    try:
        with _open(data_dir, api_key) as box:
            sender = box.attach_sender(transport, batch_size=500)
            try:
                empty = sender.flush(max(0.0, args.timeout))
            finally:
                sender.close(0.0)
            status = box.status()
    finally:
        transport.close()
    _print(status, args.json, flushed=empty)
    return EXIT_OK if empty else EXIT_REMAINING


def _run(args: argparse.Namespace) -> int:
    """The sender as its own process, until SIGTERM or SIGINT."""
    from credit_check._transport import Transport

    data_dir = Path(os.environ.get("CREDIT_CHECK_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    base_url, api_key = _service()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    transport = Transport(base_url, api_key)
    box = _open(data_dir, api_key)
    try:
        after_import = None
        if isinstance(box, Outbox):
            # As the sender process a Checker starts: the follow-up's watches made here.
            from credit_check._lifecycle._index import local_indexer
            from credit_check._settings import Settings

            settings = Settings.from_env()
            after_import = local_indexer(
                data_dir, box, box.cipher, watch_limit=settings.watch_limit,
                lift_retention=settings.lift_retention_days * 86400.0).index
        sender = box.attach_sender(transport, batch_size=500, after_import=after_import)
        where = box.db.shown if isinstance(box, PgOutbox) else data_dir
        print(f"credit-check outbox sender for {where} (pid {os.getpid()}); waiting for "
              "the sender role", file=sys.stderr, flush=True)
        sender.run_forever(stop)
        sender.close(max(0.0, args.timeout))
    finally:
        box.close(0.0)
        transport.close()
    return EXIT_OK


def _salvage(args: argparse.Namespace) -> int:
    if _outbox_url():
        raise ConfigurationError("salvage recovers records of an outbox in a data directory; "
                                 "with CREDIT_CHECK_OUTBOX_URL the database keeps them (see "
                                 "'credit-check outbox status')")
    data_dir = Path(os.environ.get("CREDIT_CHECK_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    _, api_key = _service()
    box = _open(data_dir, api_key)
    assert isinstance(box, Outbox)
    with box:
        ciphers = [DataDir(data_dir).cipher(_key_text(data_dir))]
        if args.key:
            ciphers.append(FieldCipher.from_text(args.key))
        if args.file:
            source = Path(args.file)
            if not source.is_file():
                raise ConfigurationError(f"salvage: no such file {str(source)!r}")
            found = salvage(source, box.store, ciphers, feedback_key(api_key))
        else:
            found = retry_quarantine(box.store, ciphers, feedback_key(api_key))
    _print_salvage(found, args.json)
    return EXIT_OK if not found.unreadable else EXIT_REMAINING


def _print_salvage(found: Salvaged, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"recovered": found.recovered, "present": found.present,
                          "unreadable": found.unreadable}))
        return
    print(f"recovered:  {found.recovered} records (delivered by the sender as usual)\n"
          f"present:    {found.present} already in the outbox\n"
          f"unreadable: {found.unreadable}" + (" (try --key with the key of the time)"
                                              if found.unreadable else ""))


def _print(status: OutboxStatus, as_json: bool, *, flushed: bool | None = None) -> None:
    data: dict[str, Any] = {
        "path": status.path,
        "pending": status.pending,
        "delivered": status.delivered,
        "dead_lettered": status.dead_lettered,
        "undecryptable": status.undecryptable,
        "journal_bytes": status.journal_bytes,
        "oldest_pending_age": status.oldest_pending_age,
        "full": status.full,
        "dead_reasons": [{"reason": r, "count": n} for r, n in status.dead_reasons],
        "damaged": list(status.damaged),
        "sender_pid": status.sender_pid,
    }
    if flushed is not None:
        data["flushed"] = flushed
    if as_json:
        print(json.dumps(data, ensure_ascii=False))
        return
    age = status.oldest_pending_age
    lines = [
        f"outbox:        {status.path}",
        f"pending:       {status.pending}"
        + (f" (oldest {age:.1f} s)" if age is not None else "")
        + (" — FULL" if status.full else ""),
        f"delivered:     {status.delivered} (kept for the retention period)",
        f"dead-lettered: {status.dead_lettered}",
    ]
    lines += [f"  {n:>6}  {r}" for r, n in status.dead_reasons]
    lines.append(f"undecryptable: {status.undecryptable}" + (
        " — ERROR: kept aside; run 'credit-check outbox salvage --key <old key>'"
        if status.undecryptable else ""))
    lines.append("sender:        " + (f"pid {status.sender_pid}" if status.sender_pid
                                      else "none running"))
    for path in status.damaged:
        lines.append(f"DAMAGED copy:  {path} — run 'credit-check outbox salvage {path}'")
    if flushed is not None:
        lines.append("flush:         " + ("everything delivered" if flushed
                                          else "records remain; they are retried"))
    print("\n".join(lines))
