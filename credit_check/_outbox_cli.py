"""``credit-check outbox status|flush``: inspect the feedback outbox, or deliver it now.

Configuration comes from the environment, as for the Checker: ``CREDIT_CHECK_DATA_DIR``
(the outbox file lives there), and for ``flush`` also ``CREDIT_CHECK_BASE_URL``,
``CREDIT_CHECK_API_KEY`` and the encryption key (``CREDIT_CHECK_ENCRYPTION_KEY`` or the
data directory's key file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from credit_check._crypto import FieldCipher, feedback_key
from credit_check._datadir import KEY_FILE, DataDir
from credit_check._exceptions import ConfigurationError, OutboxError
from credit_check._outbox import OUTBOX_FILE, Outbox, OutboxStatus
from credit_check._settings import DEFAULT_DATA_DIR

EXIT_OK, EXIT_REMAINING, EXIT_CONFIG = 0, 1, 2


def outbox(args: argparse.Namespace) -> int:
    """Run ``outbox status`` or ``outbox flush``; the exit code of the command."""
    try:
        if args.action == "status":
            return _status(args)
        return _flush(args)
    except ConfigurationError as exc:
        print(f"credit-check: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OutboxError as exc:
        print(f"credit-check: error: {exc}", file=sys.stderr)
        return EXIT_REMAINING


def _outbox_path() -> Path:
    data_dir = os.environ.get("CREDIT_CHECK_DATA_DIR") or DEFAULT_DATA_DIR
    path = Path(data_dir).expanduser() / OUTBOX_FILE
    if not path.exists():
        raise ConfigurationError(
            f"no feedback outbox at {str(path)!r}; set CREDIT_CHECK_DATA_DIR to the data "
            "directory your checkers use"
        )
    return path


def _status(args: argparse.Namespace) -> int:
    path = _outbox_path()
    # status reads only the clear columns: no key is needed, and none must be generated.
    with Outbox(path, cipher=FieldCipher(os.urandom(32)), hmac_key=b"") as store:
        status = store.status()
    _print(status, args.json)
    return EXIT_OK


def _flush(args: argparse.Namespace) -> int:
    from credit_check._sender import OutboxSender
    from credit_check._transport import Transport

    path = _outbox_path()
    base_url = os.environ.get("CREDIT_CHECK_BASE_URL", "")
    api_key = os.environ.get("CREDIT_CHECK_API_KEY", "")
    if not base_url:
        raise ConfigurationError("CREDIT_CHECK_BASE_URL: missing; set it to the list service URL")
    if not api_key:
        raise ConfigurationError("CREDIT_CHECK_API_KEY: missing; set your department's API key")
    key_text = os.environ.get("CREDIT_CHECK_ENCRYPTION_KEY")
    data_dir = DataDir(path.parent)
    if not key_text and not data_dir.file(KEY_FILE).exists():
        # A freshly generated key could not decrypt a single stored record.
        raise ConfigurationError(
            "CREDIT_CHECK_ENCRYPTION_KEY: missing, and the data directory has no key file; "
            "set the key your checkers use"
        )
    transport = Transport(base_url, api_key)
    try:
        with Outbox(path, cipher=data_dir.cipher(key_text),
                    hmac_key=feedback_key(api_key)) as store:
            sender = OutboxSender(store, transport, batch_size=500)
            try:
                empty = sender.flush(max(0.0, args.timeout))
            finally:
                sender.close(0.0)
            status = store.status()
    finally:
        transport.close()
    _print(status, args.json, flushed=empty)
    return EXIT_OK if empty else EXIT_REMAINING


def _print(status: OutboxStatus, as_json: bool, *, flushed: bool | None = None) -> None:
    data: dict[str, Any] = {
        "path": status.path,
        "pending": status.pending,
        "delivered": status.delivered,
        "dead_lettered": status.dead_lettered,
        "oldest_pending_age": status.oldest_pending_age,
        "full": status.full,
        "dead_reasons": [{"reason": r, "count": n} for r, n in status.dead_reasons],
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
    if flushed is not None:
        lines.append("flush:         " + ("everything delivered" if flushed
                                          else "records remain; they are retried"))
    print("\n".join(lines))
