"""Run in a fresh interpreter by test_licensing.py (Django settings are process-global):
configure the licensing example from CREDIT_CHECK_* variables, send one application per
showcase code given on the command line, print the answers as JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "licensing"))

import app as licensing

licensing.configure(allowed_hosts=["testserver"])

from django.test import Client  # noqa: E402

client = Client()
print(json.dumps({"health": client.get("/healthz").json()}), flush=True)
for n, code in enumerate(sys.argv[1:], 1):
    resp = client.post("/licences/applications", {
        "uscc": code, "company": f"申请人{n}", "item_code": "11350100MB0000001X4000117001",
        "case_no": f"XK-2026-{n:03d}"})
    print(json.dumps({"code": code, "status": resp.status_code,
                      "header": resp.headers.get("X-Credit-Check"),
                      "body": json.loads(resp.content)}, ensure_ascii=False), flush=True)
