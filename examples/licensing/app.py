"""行政许可受理 — a Django licensing view guarded by the credit-check view decorator.

One file, Django configured in code (no project skeleton, no database): the licence
application view is decorated with ``credit_check_view(scenario="licensing", ...)``, and
answers by the decision found on ``request.credit_decision``:

* green channel (e.g. an A-grade taxpayer): accepted, 容缺受理 allowed on a written
  commitment within the measure's ``commitment_days``;
* allow: accepted through the normal procedure;
* restrict (e.g. 经营异常名录): accepted, but 告知承诺 and 容缺受理 do not apply — every
  material is required;
* review (e.g. a serious safety-production violator): queued for strict review (从严审核);
* deny: answered by the decorator itself with 403 problem+json (none in licensing in the
  demo catalogue).

Run it against the sandbox (see README.md)::

    credit-check serve --demo
    python examples/licensing/app.py runserver 127.0.0.1:8703 --noreload   # CREDIT_CHECK_* set
"""

from __future__ import annotations

import atexit
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

import django
from credit_check.adapters.django import credit_check_view
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from credit_check import Checker, Decision, FromForm, Outcome

_checker: Checker | None = None


def make_checker() -> Checker:
    """The factory named in ``settings.CREDIT_CHECK``: configured from ``CREDIT_CHECK_*``."""
    global _checker
    if _checker is None:
        _checker = Checker.from_env()
        _checker.wait_ready(15)           # serve from a fresh snapshot from the first request
        atexit.register(_checker.close)   # deliver the feedback outbox on shutdown
    return _checker


def configure(*, allowed_hosts: Sequence[str] | None = None, debug: bool = False,
              **credit_check: Any) -> None:
    """Configure Django for this one-file app (call once, before the first request).

    Args:
        allowed_hosts: else ``LICENSING_ALLOWED_HOSTS`` (comma-separated) or localhost.
        credit_check: entries of ``settings.CREDIT_CHECK`` (e.g. ``checker=`` a Checker
            object instead of the factory).
    """
    hosts = allowed_hosts or os.environ.get("LICENSING_ALLOWED_HOSTS",
                                            "127.0.0.1,localhost").split(",")
    settings.configure(
        DEBUG=debug,
        SECRET_KEY=os.environ.get("LICENSING_SECRET_KEY") or secrets.token_urlsafe(32),
        ALLOWED_HOSTS=list(hosts),
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=["django.middleware.security.SecurityMiddleware",
                    "django.middleware.common.CommonMiddleware"],
        USE_TZ=True,
        TIME_ZONE="Asia/Shanghai",
        CREDIT_CHECK={"checker": f"{__name__}.make_checker", "review": "proceed",
                      **credit_check},
    )
    django.setup()


def _answer(decision: Decision, case_no: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"case_no": case_no, "credit": decision.outcome.value,
                              "decision_id": decision.decision_id,
                              "measures": [{"code": m.code, "name": m.name,
                                            "legal_basis": m.legal_basis}
                                           for m in decision.measures]}
    if decision.outcome is Outcome.GREEN_CHANNEL:
        days = next((m.params["commitment_days"] for m in decision.measures
                     if m.params.get("commitment_days")), 30)
        answer |= {"status": "accepted", "track": "green_channel",
                   "tolerance_acceptance": {"allowed": True, "commitment_days": days}}
    elif decision.outcome is Outcome.RESTRICT:
        answer |= {"status": "accepted", "track": "normal",
                   "tolerance_acceptance": {"allowed": False},
                   "notice": "不适用告知承诺、容缺受理，须提交全部材料 / all materials required"}
    elif decision.outcome is Outcome.REVIEW:
        answer |= {"status": "pending_review", "track": "strict_review",
                   "notice": "转交从严审核 / referred for strict review"}
    else:
        answer |= {"status": "accepted", "track": "normal"}
    if decision.degraded:
        answer["notice"] = "信用平台暂不可用，恢复后自动补查 / credit platform unreachable; re-checked later"
    return answer


@require_POST
@credit_check_view(scenario="licensing", subject=FromForm("uscc"), case_id=FromForm("case_no"),
                   item_code=FromForm("item_code"))
def apply_licence(request: HttpRequest) -> HttpResponse:
    """``POST /licences/applications`` (form: ``uscc``, ``company``, ``item_code``, ``case_no``)."""
    decision: Decision = request.credit_decision
    status = 202 if decision.outcome is Outcome.REVIEW else 201
    return JsonResponse(_answer(decision, request.POST.get("case_no", "")), status=status,
                        json_dumps_params={"ensure_ascii": False})


@require_GET
def health(request: HttpRequest) -> HttpResponse:
    """Readiness: the checker has a catalogue and a snapshot."""
    status = make_checker().status()
    return JsonResponse({"ready": status.ready, "snapshot_version": status.snapshot_version,
                         "catalog_version": status.catalog_version},
                        status=200 if status.ready else 503)


urlpatterns = [
    path("licences/applications", apply_licence),
    path("healthz", health),
]


def main(argv: list[str] | None = None) -> None:
    from django.core.management import execute_from_command_line

    configure()
    execute_from_command_line(argv or sys.argv)


if __name__ == "__main__":
    main()
