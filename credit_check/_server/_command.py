"""``credit-check serve``: the sandbox list service under uvicorn."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from credit_check._exceptions import CreditCheckError


def serve(args: argparse.Namespace) -> int:
    """Run the sandbox until interrupted."""
    try:
        import uvicorn
    except ImportError:
        print("credit-check serve needs the server extra: pip install 'credit-check[server]'",
              file=sys.stderr)
        return 2
    from credit_check._server._app import create_app
    from credit_check._server._runner import open_sandbox

    db = Path(args.db or "credit-check-sandbox.db")
    try:
        store, signer, admin_key, demo_key = open_sandbox(db, demo=args.demo,
                                                          admin_key=args.admin_key)
    except (OSError, CreditCheckError) as exc:
        print(f"cannot open the sandbox database {db}: {exc}", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    info = {"base_url": f"http://{host}:{args.port}", "db": str(db),
            "demo_api_key": demo_key, "admin_key": admin_key,
            "public_key": signer.public_key, "snapshot_version": store.refresh().version}
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(f"credit-check sandbox list service at {info['base_url']} (database {db})\n"
              f"  demo department key: {demo_key}\n  admin key:           {admin_key}\n"
              f"  service public key:  {signer.public_key}\n"
              f"  try: curl -H 'Authorization: Bearer {demo_key}' "
              f"{info['base_url']}/v1/catalog", flush=True)
    try:
        uvicorn.run(create_app(store, signer, admin_key), host=args.host, port=args.port,
                    log_level="info", access_log=False)
    finally:
        store.close()
    return 0
