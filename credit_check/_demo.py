"""``credit-check demo``: the whole product in one run.

Starts the sandbox list service with fictional demo data on a free loopback port, runs the
demo approval app behind the ASGI middleware, sends a scripted set of applications that
shows every outcome, prints what happened (identifiers of natural persons masked), reports
a case outcome, flushes the feedback outbox and prints what the platform received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import unicodedata
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from credit_check._ids import detect_kind, mask_id


@dataclass(frozen=True)
class Step:
    """One scripted application: who applies, where, and what the rulebook should say."""

    label: str
    showcase: str
    method: str
    path: str
    body: dict[str, Any]
    form: bool = False
    expect: str = "allow"


def script(ids: dict[str, str]) -> list[Step]:
    """The scripted applications, over the sandbox's showcase subjects."""

    def bid(key: str, tender: str) -> dict[str, Any]:
        return {"bidder": {"uscc": ids[key]}, "price": "1280000.00"}

    def licence(key: str, case: str) -> dict[str, Any]:
        return {"applicant": {"uscc": ids[key]}, "case_no": case, "item": "食品经营许可"}

    return [
        Step("失信被执行人投标 / bidder on the court defaulter list", "court_defaulter_org", "POST",
             "/procurement/tenders/CG-2026-001/bids", bid("court_defaulter_org", "CG-2026-001"),
             expect="deny"),
        Step("欠薪企业申请补助 / wage-arrears firm applies for a subsidy", "wage_arrears_org",
             "POST", "/subsidy/applications",
             {"uscc": ids["wage_arrears_org"], "case_no": "BZ-2026-014"}, form=True,
             expect="deny"),
        Step("安全生产失信企业申请许可 / licence for a safety-list firm", "safety_violator_org",
             "POST", "/licensing/applications", licence("safety_violator_org", "XK-2026-101"),
             expect="review"),
        Step("经营异常名录企业申请许可 / watch-listed firm applies", "watch_org", "POST",
             "/licensing/applications", licence("watch_org", "XK-2026-102"), expect="restrict"),
        Step("纳税信用A级企业申请许可 / A-grade taxpayer applies", "a_grade_org", "POST",
             "/licensing/applications", licence("a_grade_org", "XK-2026-103"),
             expect="green_channel"),
        Step("连续三年无不良记录 / clean for over three years", "clean_3y_org", "POST",
             "/licensing/applications", licence("clean_3y_org", "XK-2026-104"),
             expect="green_channel"),
        Step("税务失信异议处理中 / tax entry under objection", "objection_tax_org", "POST",
             "/procurement/tenders/CG-2026-001/bids", bid("objection_tax_org", "CG-2026-001"),
             expect="allow"),
        Step("已信用修复企业投标 / repaired firm bids", "repaired_org", "POST",
             "/procurement/tenders/CG-2026-001/bids", bid("repaired_org", "CG-2026-001"),
             expect="allow"),
        Step("联合体含税务失信成员 / consortium with a tax violator", "tax_violator_org", "POST",
             "/procurement/tenders/CG-2026-002/consortium-bids",
             {"members": [{"uscc": ids["clean_recent_org"]}, {"uscc": ids["tax_violator_org"]}]},
             expect="deny"),
        Step("法定代表人关联失信被执行人 / legal representative of a defaulter", "new_org_with_listed_rep",
             "POST", "/market/registrations",
             {"uscc": ids["new_org_with_listed_rep"],
              "legal_representative_id": ids["court_defaulter_rep"], "case_no": "SC-2026-007"},
             expect="deny"),
        Step("未上榜企业投标 / a firm on no list bids", "unknown_org", "POST",
             "/procurement/tenders/CG-2026-001/bids", bid("unknown_org", "CG-2026-001")),
        Step("错误的信用代码 / mistyped credit code", "", "POST",
             "/procurement/tenders/CG-2026-001/bids", {"bidder": {"uscc": "91110000600037341N"}},
             expect="invalid"),
    ]


async def _call(app: Any, method: str, path: str, body: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
    """Send one request straight into an ASGI app, as a server would."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        "headers": [(b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode())],
    }
    sent = False
    status = 0
    headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.update({k.decode().lower(): v.decode() for k, v in message["headers"]})
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cell(text: str, width: int) -> str:
    """``text`` padded or cut to ``width`` terminal columns (CJK characters take two)."""
    if _width(text) > width:
        while _width(text) > width - 1:
            text = text[:-1]
        text += "…"
    return text + " " * (width - _width(text))


def _shown(code: str) -> str:
    return mask_id(code) if code and detect_kind(code) == "person" else code


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when every scripted application got the expected outcome."""
    from credit_check._server._command import SERVER_EXTRA_HINT

    try:
        # The sandbox is imported whole, but serves only through uvicorn: ask for it first.
        import uvicorn  # noqa: F401

        from credit_check._server import SandboxServer
        from credit_check._server._demo import SHOWCASE
    except ImportError:
        print(SERVER_EXTRA_HINT.format(command="demo"), file=sys.stderr)
        return 2
    from credit_check._checker import Checker
    from credit_check._demo_app import build_app

    started = time.monotonic()
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="credit-check-demo-") as tmp:
        root = Path(tmp)
        (root / "sandbox").mkdir()
        server = SandboxServer(root / "sandbox" / "sandbox.db", demo=True, port=0)
        server.start()
        try:
            return _run_with(server, SHOWCASE, root, out, args, started, Checker, build_app)
        finally:
            server.stop()


def _run_with(server: Any, ids: dict[str, str], root: Path, out: Any, args: argparse.Namespace,
              started: float, checker_cls: Any, build_app: Any) -> int:
    print(f"沙箱名单服务（虚构示范数据）/ sandbox list service with demo data: {server.base_url}",
          file=out)
    checker = checker_cls(base_url=server.base_url, api_key=server.demo_key,
                          department="示范市行政审批局", data_dir=root / "checker",
                          service_public_key=server.public_key, sync_interval=30)
    results = []
    failures = 0
    try:
        if not checker.wait_ready(15):
            print("15 秒内未取得快照和目录 / the checker did not get a snapshot and catalogue "
                  "in 15 s", file=sys.stderr)
            return 1
        app = build_app(checker)
        status = checker.status()
        print(f"快照版本 snapshot {status.snapshot_version}，目录 catalogue "
              f"{status.catalog_version}\n", file=out)
        for step in script(ids):
            if step.form:
                body = urllib.parse.urlencode(step.body).encode()
                ctype = "application/x-www-form-urlencoded"
            else:
                body = json.dumps(step.body, ensure_ascii=False).encode()
                ctype = "application/json"
            status, headers, payload = asyncio.run(_call(app, step.method, step.path, body, ctype))
            data = json.loads(payload or b"{}")
            outcome = (headers.get("x-credit-check", "").split(";")[0].strip()
                       or ("invalid" if status == 400 else "?"))
            ok = outcome == step.expect
            failures += not ok
            results.append((step, status, outcome, data, ok))
        green = next((d for s, st, o, d, _ in results if o == "green_channel"), None)
        if green and green.get("decision_id"):
            checker.report(green["decision_id"], result="accepted",
                           note="容缺受理：申请人书面承诺30日内补齐材料 / accepted on a 30-day commitment",
                           operator="窗口A01")
        deny = next((d for s, st, o, d, _ in results if o == "deny" and d.get("decision_id")), None)
        if deny:
            checker.report(deny["decision_id"], result="rejected", note="投标被拒绝 / bid refused")
    finally:
        checker.close()
    records = requests.get(f"{server.base_url}/v1/admin/feedback",
                           headers={"Authorization": f"Bearer {server.admin_key}"},
                           timeout=10).json()["records"]
    if args.json:
        json.dump({"applications": [
            {"label": s.label, "status": st, "outcome": o, "expected": s.expect, "ok": ok,
             "response": d} for s, st, o, d, ok in results],
            "feedback": [{"kind": r["kind"], "outcome": r["outcome"],
                          "case_id": r["transaction"].get("case_id"),
                          "subject": _shown(r["subject"]["id"])} for r in records]},
            out, ensure_ascii=False, indent=2)
        print(file=out)
    else:
        _print_results(results, ids, out)
        _print_feedback(records, out)
    print(f"\n{len(results) - failures}/{len(results)} 件申请结果符合预期 / applications decided "
          f"as expected; 平台收到执行反馈 {len(records)} 条 / feedback records received; "
          f"{time.monotonic() - started:.1f} s", file=out)
    return 0 if failures == 0 else 1


def _print_results(results: list[Any], ids: dict[str, str], out: Any) -> None:
    print(f"{_cell('申请 application', 44)} {_cell('主体 subject', 20)} {'HTTP':>4}  "
          f"{_cell('结果 outcome', 14)} 措施／说明 measures / message", file=out)
    print("-" * 120, file=out)
    for step, status, outcome, data, ok in results:
        subject = _shown(ids.get(step.showcase, "")) if step.showcase else "91110000600037341N"
        if status == 403:
            note = "; ".join(f"{m['code']} {m['name']} ({m['legal_basis'][:28]}…)"
                             for m in data.get("measures", [])[:2])
        elif status == 400:
            note = str(data.get("detail", ""))[:90]
        else:
            note = json.dumps({k: v for k, v in data.items() if k != "decision_id"},
                              ensure_ascii=False)[:90]
        mark = "" if ok else f"  <-- 预期 expected {step.expect}"
        print(f"{_cell(step.label, 44)} {_cell(subject, 20)} {status:>4}  "
              f"{_cell(outcome, 14)} {note}{mark}", file=out)


def _print_feedback(records: list[dict[str, Any]], out: Any) -> None:
    print(f"\n平台收到的执行反馈 / feedback received by the platform: {len(records)} 条 records",
          file=out)
    print(f"{_cell('类型 kind', 11)} {_cell('办件 case', 14)} {_cell('场景 scenario', 14)} "
          f"{_cell('主体 subject', 20)} {_cell('结果 outcome', 14)} 措施 measures", file=out)
    print("-" * 100, file=out)
    for r in records:
        tx = r.get("transaction", {})
        measures = ", ".join(m["code"] for m in r.get("measures", []))
        extra = f" result={r['result']}" if r.get("result") else ""
        print(f"{_cell(r['kind'], 11)} {_cell(str(tx.get('case_id') or '-'), 14)} "
              f"{_cell(str(tx.get('scenario')), 14)} {_cell(_shown(r['subject']['id']), 20)} "
              f"{_cell(r['outcome'], 14)} {measures}{extra}", file=out)
