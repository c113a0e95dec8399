"""The 查询记录 of a case: every record the data directory keeps for one case id — each
check, the requests refused at the gate included (their decision records), case outcomes
and post-checks — with its receipts, as JSON, CSV or printable HTML (A4, Chinese first),
and a verification digest: SHA-256 of the canonical JSON of the report's records, printed
on the page and recomputed by ``credit-check report verify``.

Natural persons' ids are masked in every form (the report is a file at rest).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import io
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from credit_check._crypto import canonical_json
from credit_check._ids import detect_kind, mask_id
from credit_check._models import CST, FeedbackRecord, SubjectKind

REPORT_TYPE = "credit-check/case-report/v1"
KIND_WORDS = {"decision": "核查 / check", "outcome": "办理结果 / outcome",
              "post_check": "补查 / post-check", "rescreen": "事中复核 / re-screen",
              "case_opened": "开始事中跟踪 / follow-up opened",
              "commitment": "信用承诺 / commitment",
              "commitment_fulfilled": "承诺履约 / commitment fulfilled",
              "commitment_waived": "承诺免除 / commitment waived",
              "commitment_breached": "违诺 / commitment breached"}
OUTCOME_WORDS = {"deny": "禁止 / deny", "review": "从严审核 / review",
                 "restrict": "限制 / restrict", "allow": "正常办理 / allow",
                 "green_channel": "绿色通道 / green channel"}
CSV_COLUMNS = ["time", "kind", "channel", "operator", "department", "scenario", "subject",
               "name", "outcome", "degraded", "measures", "legal_basis", "entries",
               "catalog_version", "data_version", "receipt", "decision_id", "record_id",
               "result", "hmac"]
_EMBEDDED = re.compile(r'<script type="application/json" id="records">(.*?)</script>', re.S)
_PRINTED = re.compile(r'data-digest="([0-9a-f]{64})"')


def channel(record: dict[str, Any]) -> str:
    """How the answer behind a record was had."""
    receipt = record.get("receipt") or {}
    if record.get("kind") == "outcome":
        return "办理结果报告 / reported outcome"
    if str(record.get("kind", "")).startswith("commitment"):
        return "信用承诺台账 / commitment ledger"
    if record.get("kind") == "case_opened":
        return "事中跟踪 / case follow-up"
    if receipt.get("kind") == "service":
        return "在线签名查询 / signed online answer"
    if record.get("degraded"):
        return "降级处理 / degraded (fallback)"
    if receipt.get("kind") == "snapshot":
        return "本地快照 / local snapshot"
    return "在线查询 / online lookup"


def public_record(record: FeedbackRecord) -> dict[str, Any]:
    """A record as the report shows it: its JSON form with persons' ids masked."""
    data = record.model_dump(mode="json")
    if record.subject.kind is SubjectKind.PERSON:
        data["subject"]["id"] = mask_id(record.subject.id)
    for match in data.get("matches") or ():
        if match.get("subject_id") and detect_kind(match["subject_id"]) == "person":
            match["subject_id"] = mask_id(match["subject_id"])
    data["channel"] = channel(data)
    return data


def digest(records: Sequence[dict[str, Any]]) -> str:
    """SHA-256 (hex) of the canonical JSON of the report's records."""
    return hashlib.sha256(canonical_json(list(records))).hexdigest()


def build(case_id: str, records: Iterable[FeedbackRecord], *, department: str | None = None,
          now: dt.datetime | None = None) -> dict[str, Any]:
    """The report as JSON: ``{type, case_id, generated_at, department, records, digest}``."""
    shown = sorted((public_record(r) for r in records), key=lambda d: str(d["created_at"]))
    return {"type": REPORT_TYPE, "case_id": case_id,
            "generated_at": (now or dt.datetime.now(CST)).isoformat(timespec="seconds"),
            "department": department, "count": len(shown), "records": shown,
            "digest": digest(shown)}


def _measures(record: dict[str, Any]) -> tuple[str, str]:
    measures = record.get("measures") or []
    return ("; ".join(f"{m['code']} {m['name']}" for m in measures),
            "; ".join(m["legal_basis"] for m in measures))


def _entries(record: dict[str, Any]) -> str:
    return "; ".join(f"{m['entry_id']} {m['list_code']} [{m['status']}]"
                     for m in record.get("matches") or [])


def _receipt(record: dict[str, Any]) -> str:
    receipt = record.get("receipt")
    if not receipt:
        return ""
    if receipt.get("kind") == "service":
        return f"service-signed, key {receipt.get('key_id')}"
    return (f"snapshot v{receipt.get('version')} key {receipt.get('key_id')} "
            f"prefix {receipt.get('prefix')}")


def to_csv(report: dict[str, Any]) -> str:
    """One row per record, then the digest as a last ``#`` line."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for r in report["records"]:
        measures, basis = _measures(r)
        tx = r.get("transaction") or {}
        writer.writerow({
            "time": r["created_at"], "kind": r["kind"], "channel": r["channel"],
            "operator": r.get("operator") or "", "department": r.get("department") or "",
            "scenario": tx.get("scenario") or "", "subject": r["subject"]["id"],
            "name": r["subject"].get("name") or "", "outcome": r["outcome"],
            "degraded": str(bool(r.get("degraded"))).lower(), "measures": measures,
            "legal_basis": basis, "entries": _entries(r),
            "catalog_version": r.get("catalog_version") or "",
            "data_version": r.get("data_version") or "", "receipt": _receipt(r),
            "decision_id": r["decision_id"], "record_id": r["record_id"],
            "result": r.get("result") or "", "hmac": r.get("hmac") or ""})
    out.write(f"# case {report['case_id']}, {report['count']} records, sha256 "
              f"{report['digest']}\n")
    return out.getvalue()


_CSS = """
@page { size: A4; margin: 14mm 12mm 16mm 12mm; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC",
       sans-serif; font-size: 10pt; color: #111; margin: 0 auto; max-width: 190mm; }
h1 { font-size: 16pt; margin: 0 0 2mm; }
.meta { margin: 0 0 4mm; } .meta td { padding: 0 6mm 0 0; }
table.records { width: 100%; border-collapse: collapse; table-layout: fixed; }
table.records th, table.records td { border: 0.3mm solid #555; padding: 1mm 1.2mm;
       vertical-align: top; overflow-wrap: anywhere; }
table.records th { background: #eee; font-weight: 600; }
tr { page-break-inside: avoid; }
thead { display: table-header-group; }
td.outcome-deny { font-weight: 700; } .degraded td { font-style: italic; }
.digest { margin-top: 5mm; font-family: monospace; font-size: 9pt; border: 0.3mm solid #111;
          padding: 2mm; word-break: break-all; }
small { color: #444; }
@media print { a { color: inherit; text-decoration: none; } }
"""


def _when(text: str) -> str:
    # As printed: to the second, the offset kept (the JSON keeps the full time).
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M:%S %z")


def to_html(report: dict[str, Any]) -> str:
    """A printable page (A4, Chinese first) carrying the records as embedded JSON, so the
    file itself can be verified, and the digest printed for the paper copy."""
    e = html.escape
    rows = []
    for i, r in enumerate(report["records"], 1):
        measures, basis = _measures(r)
        tx = r.get("transaction") or {}
        outcome = r["outcome"]
        result = f"<br><small>结果 / result: {e(r['result'])}</small>" if r.get("result") else ""
        rows.append(
            f'<tr class="{e(outcome)}{" degraded" if r.get("degraded") else ""}">'
            f"<td>{i}</td><td>{e(_when(str(r['created_at'])))}</td>"
            f"<td>{e(KIND_WORDS.get(r['kind'], r['kind']))}<br><small>{e(r['channel'])}"
            f"</small></td>"
            f"<td>{e(r.get('operator') or '—')}<br><small>{e(r.get('department') or '')}"
            f"</small></td>"
            f"<td>{e(r['subject']['id'])}<br><small>{e(r['subject'].get('name') or '')}"
            f"</small></td>"
            f'<td class="outcome-{e(outcome)}">{e(OUTCOME_WORDS.get(outcome, outcome))}'
            f"{'<br><small>降级 / degraded</small>' if r.get('degraded') else ''}{result}</td>"
            f"<td>{e(measures) or '—'}<br><small>{e(basis)}</small></td>"
            f"<td>{e(_entries(r)) or '—'}</td>"
            f"<td><small>目录 / cat. {e(r.get('catalog_version') or '—')}<br>数据 / data "
            f"{e(r.get('data_version') or '—')}<br>{e(_receipt(r)) or '无凭证 / no receipt'}"
            f"<br>{e(tx.get('scenario') or '')}</small></td></tr>")
    embedded = json.dumps(report["records"], ensure_ascii=False).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>查询记录 {e(report['case_id'])} / Query record</title>
<style>{_CSS}</style></head>
<body>
<h1>信用核查查询记录 <small>/ Credit check query record</small></h1>
<table class="meta">
<tr><td>办件编号 / Case</td><td id="case-id">{e(report['case_id'])}</td></tr>
<tr><td>生成时间 / Generated</td><td>{e(report['generated_at'])}</td></tr>
<tr><td>核查部门 / Department</td><td>{e(report.get('department') or '—')}</td></tr>
<tr><td>记录条数 / Records</td><td id="count">{report['count']}</td></tr>
</table>
<table class="records">
<colgroup><col style="width:5%"><col style="width:12%"><col style="width:11%">
<col style="width:10%"><col style="width:13%"><col style="width:9%"><col style="width:16%">
<col style="width:12%"><col style="width:12%"></colgroup>
<thead><tr><th>#</th><th>时间<br><small>Time</small></th><th>类型 渠道<br><small>Kind, channel
</small></th><th>经办人 部门<br><small>Operator</small></th><th>主体<br><small>Subject</small>
</th><th>结论<br><small>Outcome</small></th><th>措施 法律依据<br><small>Measures, legal basis
</small></th><th>名单条目<br><small>Entries</small></th><th>版本 凭证<br><small>Versions,
receipt</small></th></tr></thead>
<tbody>
{chr(10).join(rows) or '<tr><td colspan="9">无记录 / no records</td></tr>'}
</tbody></table>
<div class="digest" data-digest="{report['digest']}">校验码 / Verification digest (SHA-256):
<br><span id="digest">{report['digest']}</span><br><small>核验：credit-check report verify
本文件 / verify: credit-check report verify FILE; 凭证：credit-check receipt verify
</small></div>
<script type="application/json" id="records">{embedded}</script>
</body></html>
"""


def verify_text(text: str) -> tuple[bool, str, str]:
    """Recompute the digest of a report (its JSON, or the HTML's embedded records) and
    compare it with the one it states: ``(ok, stated, recomputed)``.

    Raises:
        ValueError: the text is not a case report.
    """
    stripped = text.lstrip()
    if stripped.startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("type") != REPORT_TYPE:
            raise ValueError("not a case report (its type is not " + REPORT_TYPE + ")")
        records, stated = data.get("records"), str(data.get("digest"))
    else:
        found, printed = _EMBEDDED.search(text), _PRINTED.search(text)
        if found is None or printed is None:
            raise ValueError("not a case report: no embedded records or printed digest")
        records, stated = json.loads(found.group(1).replace("<\\/", "</")), printed.group(1)
    if not isinstance(records, list):
        raise ValueError("not a case report: records is not a list")
    again = digest(records)
    return again == stated, stated, again
