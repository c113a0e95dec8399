"""``credit-check serve``: the sandbox list service under uvicorn, and ``serve keygen``, which
makes the keys that every instance on one PostgreSQL database is given."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

from credit_check._exceptions import CreditCheckError

SERVER_EXTRA_HINT = ("credit-check {command} needs the server extra: "
                     "pip install 'credit-check[server]'")
DB_ENV = "CREDIT_CHECK_SANDBOX_DB"
DEFAULT_DB = "credit-check-sandbox.db"


def serve(args: argparse.Namespace) -> int:
    """Run the sandbox until interrupted (or make keys: ``serve keygen``)."""
    if args.action == "keygen":
        return keygen(args)
    if args.action == "rotate-key":
        return rotate_key(args)
    if args.file is not None:
        print(f"credit-check: error: unexpected argument {args.file!r} (did you mean "
              "'serve keygen FILE'?)", file=sys.stderr)
        return 2
    if args.print_showcase:
        return print_showcase(args.json)
    try:
        import uvicorn
    except ImportError:
        print(SERVER_EXTRA_HINT.format(command="serve"), file=sys.stderr)
        return 2
    from credit_check._pg import is_postgres_url, redact
    from credit_check._server._app import create_app
    from credit_check._server._runner import open_sandbox

    db: str | Path = args.db or os.environ.get(DB_ENV) or DEFAULT_DB
    if not is_postgres_url(db):
        db = Path(db)
    shown = redact(str(db))
    try:
        store, signer, admin_key, demo_key = open_sandbox(
            db, demo=args.demo, admin_key=args.admin_key, signing_key=args.signing_key,
            data_key_file=args.data_key)
    except (OSError, CreditCheckError) as exc:
        print(f"cannot open the sandbox database {shown}: {exc}", file=sys.stderr)
        return 2
    try:
        # Bound here, so that the address printed is the real one (--port 0 picks a free
        # port) and a port in use is a clear error before anything is printed.
        sock = socket.create_server(
            (args.host, args.port), family=socket.AF_INET6 if ":" in args.host
            else socket.AF_INET)
        # Accepted connections inherit it: uvicorn given a ready socket leaves Nagle on, and
        # every answer (written in two parts) then waits for the client's delayed ACK (40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        store.close()
        print(f"credit-check: error: cannot listen on {args.host} port {args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    info = {"base_url": f"http://{host}:{port}", "db": shown,
            "demo_api_key": demo_key, "admin_key": admin_key,
            "public_key": signer.public_key, "snapshot_version": store.refresh().version}
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(f"credit-check sandbox list service at {info['base_url']} (database {shown})\n"
              f"  demo department key: {demo_key}\n  admin key:           {admin_key}\n"
              f"  service public key:  {signer.public_key}\n"
              f"  try: curl -H 'Authorization: Bearer {demo_key}' "
              f"{info['base_url']}/v1/catalog", flush=True)
    try:
        config = uvicorn.Config(create_app(store, signer, admin_key), log_level="info",
                                access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        store.close()
    return 0


def print_showcase(as_json: bool) -> int:
    """``serve --demo --print-showcase``: the demo data's named subjects (fictional), to
    try each rule with; the same list as ``GET /v1/admin/showcase``."""
    from credit_check._server._demo import showcase

    subjects = showcase()
    if as_json:
        print(json.dumps({"fictional": True, "subjects": subjects}, ensure_ascii=False))
        return 0
    print("示范数据中的展示主体（虚构）/ the demo data's showcase subjects (fictional):")
    for s in subjects:
        lists = ", ".join(f"{e['list_code']}[{e['status']}]" for e in s["entries"]) or "-"
        print(f"  {s['name']:<26} {s['id']:<20} {s['kind']:<13} {lists}")
    return 0


def keygen(args: argparse.Namespace) -> int:
    """``serve keygen [FILE] [--data-key FILE]``: write a new signing key and/or data key
    (32 random bytes each, mode 0600), never over an existing file."""
    from credit_check._crypto import Signer
    from credit_check._server._keyfiles import KEY_BYTES, write_new_key

    wanted = [(Path(args.file), Signer.generate().private_bytes(), "signing key")
              if args.file else None,
              (Path(args.data_key), os.urandom(KEY_BYTES), "sandbox data key")
              if args.data_key else None]
    jobs = [job for job in wanted if job is not None]
    if not jobs:
        print("credit-check: error: serve keygen needs FILE (the signing key) and/or "
              "--data-key FILE", file=sys.stderr)
        return 2
    made: dict[str, str] = {}
    try:
        for path, key, what in jobs:
            write_new_key(path, key, what)
            made[what] = str(path)
    except CreditCheckError as exc:
        print(f"credit-check: error: {exc}", file=sys.stderr)
        return 2
    if args.file:
        made["public_key"] = Signer.from_bytes(Path(args.file).read_bytes()).public_key
    if args.json:
        print(json.dumps(made))
    else:
        for what, where in made.items():
            print(f"{what}: {where}")
        print("give every instance the same files (--signing-key, --data-key); keep them "
              "secret and backed up")
    return 0


def rotate_key(args: argparse.Namespace) -> int:
    """``serve rotate-key NEW_FILE [--db …] [--signing-key OLD] [--data-key …]``: the
    service signs with the new key from now on; the old one stays listed (receipts)."""
    from credit_check._pg import is_postgres_url, redact
    from credit_check._server._runner import rotate_signing_key

    if not args.file:
        print("credit-check: error: serve rotate-key needs NEW_FILE, made with 'credit-check "
              "serve keygen NEW_FILE'", file=sys.stderr)
        return 2
    db: str | Path = args.db or os.environ.get(DB_ENV) or DEFAULT_DB
    if not is_postgres_url(db):
        db = Path(db)
    try:
        done = rotate_signing_key(db, args.file, signing_key=args.signing_key,
                                  data_key_file=args.data_key)
    except (OSError, CreditCheckError) as exc:
        print(f"credit-check: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(done))
    else:
        print(f"the service now signs with key {done['kid']}: {done['public_key']}\n"
              "restart every instance with it (--signing-key NEW_FILE, or the key file beside "
              "a SQLite database, replaced already); clients pin the new public key "
              "(CREDIT_CHECK_SERVICE_PUBLIC_KEY); GET /v1/keys keeps listing the previous key, "
              "so receipts it signed stay verifiable")
    return 0
