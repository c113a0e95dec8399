"""The approval application the demo drives: a small Starlette service hall for
procurement bids, subsidy applications, licences, company registrations, qualifications,
honours, franchise bids and project approvals, guarded by the credit-check ASGI middleware
exactly as a host system would guard its own routes.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp

from credit_check._middleware._asgi import CreditCheckASGIMiddleware
from credit_check._middleware._guard import CheckerLike
from credit_check._middleware._routes import FromForm, FromJSON, FromPath, Route
from credit_check._models import Decision, Outcome

ROUTES = [
    Route("POST", "/procurement/tenders/{tender_id}/bids", "procurement",
          subject=FromJSON("bidder.uscc"), case_id=FromPath("tender_id")),
    Route("POST", "/procurement/tenders/{tender_id}/consortium-bids", "procurement",
          members=FromJSON("members.*.uscc"), case_id=FromPath("tender_id")),
    Route("POST", "/subsidy/applications", "subsidy",
          subject=FromForm("uscc"), case_id=FromForm("case_no")),
    Route("POST", "/licensing/applications", "licensing",
          subject=FromJSON("applicant.uscc"), case_id=FromJSON("case_no")),
    Route("POST", "/market/registrations", "market_access",
          subject=FromJSON("uscc"), legal_representative=FromJSON("legal_representative_id"),
          case_id=FromJSON("case_no")),
    Route("POST", "/qualifications/applications", "qualification",
          subject=FromJSON("uscc"), case_id=FromJSON("case_no")),
    Route("POST", "/honors/applications", "honor",
          subject=FromJSON("uscc"), case_id=FromJSON("case_no")),
    # Scenarios the catalogue names (its Liaoning and Fuxin supplements).
    Route("POST", "/franchise/bids", "franchise",
          subject=FromJSON("bidder.uscc"), case_id=FromJSON("project_no")),
    Route("POST", "/projects/approvals", "project_approval",
          subject=FromJSON("uscc"), case_id=FromJSON("case_no")),
]


def _credit(request: Request) -> dict[str, Any]:
    decision: Decision | None = getattr(request.state, "credit_decision", None)
    if decision is None:
        return {"credit": None}
    if isinstance(decision, Decision):
        data: dict[str, Any] = {"credit": decision.outcome.value, "decision_id": decision.decision_id}
        if decision.outcome is Outcome.GREEN_CHANNEL:
            days = next((m.params.get("commitment_days") for m in decision.measures
                         if m.params.get("commitment_days")), None)
            data["tolerance_acceptance"] = {"commitment_days": days}
        return data
    return {"credit": getattr(decision, "outcome", Outcome.ALLOW).value}


async def accept(request: Request) -> JSONResponse:
    """Accept the application; a REVIEW decision routes it to a clerk instead."""
    credit = _credit(request)
    status = "pending_review" if credit.get("credit") == "review" else "accepted"
    return JSONResponse({"status": status, **credit})


def build_app(checker: CheckerLike) -> ASGIApp:
    """The demo service hall with every application route guarded."""
    app = Starlette(routes=[
        StarletteRoute(route.path, accept, methods=[route.method]) for route in ROUTES
    ])
    return CreditCheckASGIMiddleware(app, checker=checker, routes=ROUTES)
