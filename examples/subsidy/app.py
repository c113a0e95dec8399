"""财政资金补助申请 — a Flask subsidy application service with the credit check.

* ``POST /applications`` (a form: ``uscc``, ``company``, ``project``, ``amount``,
  ``case_no``) is guarded by the Flask adapter's view decorator: an applicant on a black
  list (e.g. 拖欠农民工工资失信联合惩戒对象名单) gets 403 ``application/problem+json`` with
  measure P-002 限制申请财政性资金项目 and its legal basis, and the view never runs.
* ``POST /api/applications`` (JSON, for the provincial one-stop portal) is guarded by a
  route rule of the same extension, i.e. the WSGI middleware around ``app.wsgi_app``.

An accepted application is reported to the credit platform as the case outcome.

Run it against the sandbox (see README.md)::

    credit-check serve --demo
    python examples/subsidy/app.py --port 8702          # CREDIT_CHECK_* set
"""

from __future__ import annotations

import argparse
import itertools
import threading
from decimal import Decimal, InvalidOperation
from typing import Any

import flask
from credit_check.adapters.flask import CreditCheck

from credit_check import Checker, Decision, FromForm, FromJSON, Route

FORM = """<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<title>财政资金补助申请 / Subsidy application</title>
<h1>财政资金补助申请 / Subsidy application</h1>
<form method="post" action="/applications">
<p><label>统一社会信用代码 / credit code <input name="uscc" required maxlength="32"></label>
<p><label>单位名称 / company <input name="company" required maxlength="200"></label>
<p><label>项目 / project <input name="project" required maxlength="200"></label>
<p><label>申请金额（元）/ amount (CNY) <input name="amount" required></label>
<p><label>办件编号 / case number <input name="case_no" maxlength="64"></label>
<p><button>提交 / Submit</button></form>
"""


class Applications:
    """Received applications (a real system keeps them in its database)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self.items: dict[str, dict[str, Any]] = {}

    def add(self, data: dict[str, Any]) -> str:
        with self._lock:
            number = f"BZ-{next(self._numbers):05d}"
            self.items[number] = data
            return number


def _amount(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and 0 < value < Decimal("1e10") else None


def create_app(checker: Checker | None = None) -> flask.Flask:
    """The subsidy service; the checker comes from the environment unless given."""
    app = flask.Flask(__name__)
    app.config["CREDIT_CHECK_CHECKER"] = checker or Checker.from_env()
    credit = CreditCheck(routes=[
        Route("POST", "/api/applications", "subsidy",
              subject=FromJSON("applicant.uscc"), case_id=FromJSON("case_no")),
    ], review="hold")
    credit.init_app(app)
    applications = Applications()
    app.extensions["subsidy_applications"] = applications

    def accept(data: dict[str, Any]) -> flask.Response:
        decision: Decision = flask.g.credit_decision
        number = applications.add({**data, "decision_id": decision.decision_id})
        app.config["CREDIT_CHECK_CHECKER"].report(
            decision.decision_id, result="accepted",
            note=f"补助申请已受理，编号{number} / subsidy application accepted as {number}")
        response = flask.jsonify(status="accepted", application_no=number,
                                 credit=decision.outcome.value,
                                 decision_id=decision.decision_id)
        response.status_code = 201
        return response

    def invalid(message: str) -> tuple[flask.Response, int]:
        return flask.jsonify(status="invalid", detail=message), 400

    @app.get("/")
    def form() -> str:
        return FORM

    @app.post("/applications")
    @credit.guard(scenario="subsidy", subject=FromForm("uscc"), case_id=FromForm("case_no"))
    def apply_form() -> Any:
        f = flask.request.form
        amount = _amount(f.get("amount", ""))
        if amount is None:
            return invalid("申请金额无效 / amount must be a positive number of yuan")
        if not f.get("company") or not f.get("project"):
            return invalid("单位名称和项目必填 / company and project are required")
        return accept({"uscc": f["uscc"], "company": f["company"], "project": f["project"],
                       "amount": str(amount), "case_no": f.get("case_no")})

    @app.post("/api/applications")
    def apply_json() -> Any:
        body = flask.request.get_json(silent=True) or {}
        applicant = body.get("applicant") or {}
        amount = _amount(str(body.get("amount", "")))
        if amount is None:
            return invalid("amount must be a positive number of yuan")
        return accept({"uscc": applicant.get("uscc"), "company": applicant.get("name"),
                       "project": body.get("project"), "amount": str(amount),
                       "case_no": body.get("case_no")})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="subsidy applications behind the credit check")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8702)
    for option in ("--base-url", "--api-key", "--department", "--data-dir",
                   "--service-public-key"):
        parser.add_argument(option, help="overrides CREDIT_CHECK_" +
                            option[2:].upper().replace("-", "_"))
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k not in ("host", "port") and v}
    with Checker.from_env(**overrides) as checker:
        checker.wait_ready(15)
        create_app(checker).run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
