"""政务服务大厅窗口 — a service-hall clerk's credit check page.

The clerk types (or scans) the applicant's 统一社会信用代码 or 身份证号码, picks the matter's
scenario and gets the decision with its reasons: green channel, accept, restricted, review
or refused, each measure with its legal basis, and for a refusal how the applicant can
object or apply for credit repair. A green-channel applicant may be accepted with
materials missing (容缺受理) on a written commitment to supply them by a deadline; the
clerk records the commitment (信用承诺) — the case outcome and the commitment with its due
date in working days on the official calendar are reported to the credit platform
(执行反馈) — and later marks the materials received. A commitment still open the day after
its due date is reported as breached (违诺) by the application's follower process.

Run it against the sandbox (see README.md)::

    credit-check serve --demo          # in another terminal
    python examples/service_hall/app.py --base-url http://127.0.0.1:8600 --api-key ... \
        --department 示范市政务服务中心 --data-dir ./hall-data

Every page is rendered on the server; every value shown is HTML-escaped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from credit_check import (
    Checker,
    Commitment,
    CreditCheckError,
    Decision,
    InvalidArgument,
    InvalidSubjectId,
    Outcome,
    Scenario,
    Subject,
    Transaction,
    UnknownCommitment,
    UnknownDecision,
)

SCENARIOS: dict[str, str] = {
    "licensing": "行政许可 / licensing",
    "qualification": "资质认定 / qualification",
    "procurement": "政府采购 / procurement",
    "bidding": "招标投标 / bidding",
    "subsidy": "财政资金补助 / subsidy",
    "honor": "评先评优 / honours",
    "market_access": "市场准入 / market access",
    "public_resource": "公共资源交易 / public resources",
}

VERDICTS: dict[Outcome, tuple[str, str, str]] = {
    # outcome: (css class, headline, what the clerk does)
    Outcome.GREEN_CHANNEL: ("green", "绿色通道 / Green channel",
                            "优先办理；可容缺受理。 / Fast track; may be accepted with "
                            "materials missing on a written commitment."),
    Outcome.ALLOW: ("allow", "正常受理 / Accept",
                    "按正常程序受理。 / Accept through the normal procedure."),
    Outcome.RESTRICT: ("restrict", "限制便利措施 / Restricted",
                       "可以受理，但不适用告知承诺、容缺受理等便利措施。 / Accept without "
                       "any facilitation: all materials are required."),
    Outcome.REVIEW: ("review", "从严审核 / Strict review",
                     "转交审核人员从严审核后再决定。 / Refer to a reviewer before deciding."),
    Outcome.DENY: ("deny", "不予受理 / Refused",
                   "依据下列措施不予受理，并告知申请人异议和信用修复途径。 / Refuse under the "
                   "measures below and tell the applicant how to object or apply for repair."),
}

# Materials a clerk may accept as missing on a commitment, by scenario (illustrative).
MATERIALS: dict[str, list[str]] = {
    "licensing": ["场所产权证明复印件 / proof of premises", "设备清单 / equipment list",
                  "从业人员健康证明 / staff health certificates"],
    "qualification": ["技术人员社保证明 / staff social-insurance records",
                      "业绩证明材料 / project records"],
}
DEFAULT_MATERIALS = ["补充证明材料 / supporting documents"]
DEFAULT_COMMITMENT_DAYS = 30

CSS = """
body{font-family:system-ui,"Noto Sans CJK SC",sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem} label{display:block;margin:.6rem 0 .2rem} input,select,textarea{font-size:1rem;padding:.3rem;width:100%;box-sizing:border-box}
button{margin-top:1rem;font-size:1rem;padding:.4rem 1.2rem} .error{background:#fde8e8;border:1px solid #c00;padding:.6rem}
.verdict{padding:.8rem 1rem;border-radius:.3rem;margin:1rem 0} .green{background:#e3f6e3;border-left:.5rem solid #1a7f1a}
.allow{background:#eef3fb;border-left:.5rem solid #3465a4} .restrict{background:#fff6dc;border-left:.5rem solid #c49000}
.review{background:#fdeede;border-left:.5rem solid #d46a00} .deny{background:#fde8e8;border-left:.5rem solid #c00}
table{border-collapse:collapse;width:100%} td,th{border:1px solid #ccc;padding:.3rem;vertical-align:top;text-align:left}
.meta{color:#666;font-size:.85rem} .check label{display:inline;margin-left:.3rem} .check input{width:auto}
"""


def e(value: Any) -> str:
    """HTML-escape anything shown on a page."""
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{e(title)}</h1>{body}<p class="meta"><a href="/">← 新的查询 / new check</a></p>'
        f"</body></html>",
        status_code=status,
    )


def new_case_id(today: dt.date) -> str:
    return f"SL-{today:%Y%m%d}-{secrets.token_hex(3).upper()}"


def check_form(code: str = "", scenario: str = "licensing", case_id: str = "",
               error: str | None = None) -> str:
    options = "".join(
        f'<option value="{e(k)}"{" selected" if k == scenario else ""}>{e(v)}</option>'
        for k, v in SCENARIOS.items()
    )
    err = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    return (
        f"{err}<form method=post action=/check>"
        f'<label for=code>统一社会信用代码或身份证号码 / credit code or id number</label>'
        f'<input id=code name=code value="{e(code)}" autofocus autocomplete=off maxlength=64 '
        f'placeholder="扫码或输入 / scan or type">'
        f"<label for=scenario>办理事项类型 / scenario</label>"
        f"<select id=scenario name=scenario>{options}</select>"
        f"<label for=case_id>办件编号 / case number (留空自动生成 / blank: generated)</label>"
        f'<input id=case_id name=case_id value="{e(case_id)}" maxlength=64>'
        f"<button type=submit>查询 / Check</button></form>"
    )


def commitment_days(measures: Any) -> int:
    """The 容缺受理 deadline in working days, from the applied green-channel measure's
    params."""
    for m in measures:
        days = m.params.get("commitment_days")
        if isinstance(days, int) and days > 0:
            return days
    return DEFAULT_COMMITMENT_DAYS


def result_page(decision: Decision) -> HTMLResponse:
    css, headline, action = VERDICTS[decision.outcome]
    tx = decision.transaction
    parts = [
        f'<div class="verdict {css}"><h2>{e(headline)}</h2><p>{e(action)}</p>',
        "<p><strong>注意 / note:</strong> 信用平台暂不可用，按降级规则处理，恢复后将自动补查。"
        " / The credit platform was unreachable; this is the fallback outcome and the case "
        "will be re-checked automatically.</p>" if decision.degraded else "",
        "</div>",
        '<table><tr><th>主体 / applicant</th><td>',
        e(decision.subject.masked_id),
        f"{' ' + e(decision.subject.name) if decision.subject.name else ''}</td></tr>",
        f"<tr><th>事项 / scenario</th><td>{e(SCENARIOS.get(tx.scenario.value, tx.scenario.value))}</td></tr>",
        f"<tr><th>办件编号 / case</th><td>{e(tx.case_id)}</td></tr>",
        f"<tr><th>查询编号 / decision</th><td>{e(decision.decision_id)}</td></tr></table>",
        "<h3>理由 / reasons</h3><ul>",
        *(f"<li>{e(r)}</li>" for r in decision.reasons),
        "</ul>",
    ]
    if decision.measures:
        parts.append("<h3>适用措施 / measures</h3><table><tr><th>措施 / measure</th>"
                     "<th>法律依据 / legal basis</th><th>实施部门 / implemented by</th></tr>")
        parts += [f"<tr><td>{e(m.code)} {e(m.name)}</td><td>{e(m.legal_basis)}</td>"
                  f"<td>{e(m.implementing_department)}</td></tr>" for m in decision.measures]
        parts.append("</table>")
    if decision.remedy:
        parts.append(f"<h3>异议与信用修复 / objection and repair</h3><p>{e(decision.remedy)}</p>")
    if decision.outcome is Outcome.GREEN_CHANNEL:
        parts.append(commitment_form(decision))
    parts.append(f'<p class="meta">目录版本 / catalogue {e(decision.catalog_version)} · '
                 f"数据版本 / data {e(decision.data_version)} · "
                 f"{e(decision.decided_at.isoformat(timespec='seconds'))}</p>")
    return page("信用核查结果 / Credit check result", "".join(parts))


def commitment_form(decision: Decision) -> str:
    days = commitment_days(decision.measures)
    materials = MATERIALS.get(decision.transaction.scenario.value, DEFAULT_MATERIALS)
    boxes = "".join(
        f'<div class=check><input type=checkbox id=m{i} name=missing value="{e(m)}">'
        f"<label for=m{i}>{e(m)}</label></div>" for i, m in enumerate(materials)
    )
    return (
        "<h3>容缺受理承诺 / tolerance acceptance commitment</h3>"
        f"<p>申请人书面承诺在 <strong>{days}</strong> 个工作日内补齐下列材料（按法定节假日和调休计算）。"
        f" / The applicant commits in writing to supply the materials below within {days} "
        "working days (official holidays and swapped workdays counted).</p>"
        "<form method=post action=/commitment>"
        f'<input type=hidden name=decision_id value="{e(decision.decision_id)}">'
        f'<input type=hidden name=case_id value="{e(decision.transaction.case_id)}">'
        f"<p>缺少的材料 / missing materials:</p>{boxes}"
        "<label for=other>其他 / other (每行一项 / one per line)</label>"
        "<textarea id=other name=other rows=2 maxlength=500></textarea>"
        "<label for=clerk>受理人 / clerk</label><input id=clerk name=clerk maxlength=64>"
        "<button type=submit>签署承诺并受理 / Accept on commitment</button></form>"
    )


STATES = {"open": "待补齐 / open", "fulfilled": "已履约 / fulfilled",
          "waived": "已免除 / waived", "breached": "已违诺 / breached"}


def commitment_page(c: Commitment, error: str | None = None) -> HTMLResponse:
    """A commitment: its case, due date, the materials outstanding and received, and the
    "materials received" action."""
    due = e(c.due.isoformat())
    provisional = (" <em>（暂定：该年度节假日安排尚未公布 / provisional: that year's holiday "
                   "schedule is not published yet）</em>" if c.provisional else "")
    parts = [
        f'<p class="error" role="alert">{e(error)}</p>' if error else "",
        f'<div class="verdict {"green" if c.state in ("open", "fulfilled") else "deny"}">',
        f"<p>办件 / case <strong>{e(c.case_id)}</strong> · 申请人 / applicant "
        f"{e(c.subject)}</p>",
        f'<p>补齐期限 / due by <strong id=due>{due}</strong>{provisional}</p>',
        f"<p>状态 / state: <strong id=state>{e(STATES.get(c.state, c.state))}</strong></p>",
        "</div>",
    ]
    if c.received:
        parts.append("<h3>已收材料 / received</h3><ul>"
                     + "".join(f"<li>{e(i)}</li>" for i in c.received) + "</ul>")
    if c.outstanding and c.state in ("open", "breached"):
        boxes = "".join(
            f'<div class=check><input type=checkbox id=i{n} name=item value="{e(i)}">'
            f"<label for=i{n}>{e(i)}</label></div>" for n, i in enumerate(c.outstanding))
        parts.append(
            "<h3>待补材料 / outstanding</h3>"
            f'<form method=post action="/commitment/{e(c.commitment_id)}/received">{boxes}'
            "<label for=clerk>经办人 / clerk</label><input id=clerk name=clerk maxlength=64>"
            "<button type=submit>材料已收 / Materials received</button></form>")
    parts.append(f'<p class="meta">承诺编号 / commitment {e(c.commitment_id)} · '
                 f"查询编号 / decision {e(c.decision_id)}</p>")
    return page("信用承诺 / Commitment", "".join(parts))


def build_app(checker: Checker, *, department: str | None = None) -> Starlette:
    """The service-hall pages over ``checker``."""

    async def home(request: Request) -> Response:
        return page("信用核查 / Credit check", check_form())

    async def check(request: Request) -> Response:
        form = await request.form()
        code = str(form.get("code") or "").strip()
        scenario = str(form.get("scenario") or "")
        case_id = str(form.get("case_id") or "").strip()

        def again(error: str) -> Response:
            return page("信用核查 / Credit check",
                        check_form(code, scenario, case_id, error=error), status=400)

        if scenario not in SCENARIOS:
            return again("请选择办理事项类型。 / Choose a scenario.")
        if not code:
            return again("请输入统一社会信用代码或身份证号码。 / Enter the applicant's code.")
        try:
            subject = Subject.parse(code)
        except InvalidSubjectId as exc:
            return again(f"代码无效，请核对后重新输入。 / The code is not valid: {exc}")
        tx = Transaction(scenario=Scenario(scenario), department=department,
                         case_id=case_id or new_case_id(dt.date.today()))
        try:
            decision = await run_in_threadpool(checker.check, subject, tx)
        except CreditCheckError as exc:
            return page("信用核查 / Credit check",
                        check_form(code, scenario, case_id,
                                   error=f"核查失败，请稍后重试。 / The check failed: {exc}"),
                        status=503)
        return result_page(decision)

    async def commitment(request: Request) -> Response:
        form = await request.form()
        decision_id = str(form.get("decision_id") or "")
        case_id = str(form.get("case_id") or "")
        # Trust only the ids from the form: the decision itself comes from the query record.
        records = await run_in_threadpool(checker.checks_for_case, case_id) if case_id else []
        record = next((r for r in records
                       if r.decision_id == decision_id and r.kind == "decision"), None)
        if record is None or record.outcome is not Outcome.GREEN_CHANNEL:
            return page("容缺受理 / Tolerance acceptance",
                        '<p class="error" role="alert">没有找到该办件的绿色通道核查记录。 / No '
                        "green-channel decision for this case.</p>", status=400)
        days = commitment_days(record.measures)
        missing = [str(m) for m in form.getlist("missing")]
        missing += [line.strip() for line in str(form.get("other") or "").splitlines()
                    if line.strip()]
        if not missing:
            return page("容缺受理 / Tolerance acceptance",
                        '<p class="error" role="alert">请至少选择一项缺少的材料。 / Select at '
                        'least one missing material.</p>', status=400)
        clerk = str(form.get("clerk") or "").strip() or None
        note = (f"容缺受理：申请人书面承诺于{days}个工作日内补齐：{'；'.join(missing)} / "
                f"accepted on a written commitment to supply the missing materials within "
                f"{days} working days")[:2000]

        def accept() -> Commitment:
            checker.report(decision_id, result="accepted", note=note, operator=clerk)
            return checker.commit(decision_id, items=missing, working_days=days,
                                  operator=clerk)

        try:
            made = await run_in_threadpool(accept)
        except (UnknownDecision, InvalidArgument) as exc:
            return page("容缺受理 / Tolerance acceptance",
                        f'<p class="error" role="alert">{e(exc)}</p>', status=400)
        return RedirectResponse(f"/commitment/{made.commitment_id}", status_code=303)

    async def find(commitment_id: str) -> Commitment | None:
        every = await run_in_threadpool(checker.commitments)
        return next((c for c in every if c.commitment_id == commitment_id), None)

    async def show_commitment(request: Request) -> Response:
        found = await find(request.path_params["commitment_id"])
        if found is None:
            return page("信用承诺 / Commitment", '<p class="error" role="alert">没有该承诺。 / '
                        "No such commitment.</p>", status=404)
        return commitment_page(found)

    async def received(request: Request) -> Response:
        commitment_id = request.path_params["commitment_id"]
        form = await request.form()
        items = [str(m) for m in form.getlist("item")]
        clerk = str(form.get("clerk") or "").strip() or None
        try:
            await run_in_threadpool(lambda: checker.fulfil(commitment_id, items,
                                                           operator=clerk))
        except UnknownCommitment:
            return page("信用承诺 / Commitment", '<p class="error" role="alert">没有该承诺。 / '
                        "No such commitment.</p>", status=404)
        except InvalidArgument as exc:
            found = await find(commitment_id)
            return commitment_page(found, error=str(exc)) if found else page(
                "信用承诺 / Commitment", f'<p class="error" role="alert">{e(exc)}</p>', 400)
        return RedirectResponse(f"/commitment/{commitment_id}", status_code=303)

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(routes=[
        Route("/", home),
        Route("/check", check, methods=["POST"]),
        Route("/check", lambda r: RedirectResponse("/"), methods=["GET"]),
        Route("/commitment", commitment, methods=["POST"]),
        Route("/commitment/{commitment_id}", show_commitment),
        Route("/commitment/{commitment_id}/received", received, methods=["POST"]),
        Route("/favicon.ico", favicon),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--base-url", help="list service (else CREDIT_CHECK_BASE_URL)")
    parser.add_argument("--api-key", help="department API key (else CREDIT_CHECK_API_KEY)")
    parser.add_argument("--department", help="else CREDIT_CHECK_DEPARTMENT")
    parser.add_argument("--data-dir", help="else CREDIT_CHECK_DATA_DIR")
    parser.add_argument("--service-public-key", help="else CREDIT_CHECK_SERVICE_PUBLIC_KEY")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("host", "port") and v is not None}
    import uvicorn

    with Checker.from_env(**overrides) as checker:
        checker.wait_ready(15)
        uvicorn.run(build_app(checker, department=checker.settings.department),
                    host=args.host, port=args.port)


if __name__ == "__main__":
    main()
