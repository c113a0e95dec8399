"""FastAPI integration: a dependency that checks the request and returns the Decision.

    check_bid = CreditDecision(checker, scenario="bidding", subject=FromJSON("bidder.uscc"))

    @app.post("/bids")
    async def bid(payload: Bid, decision: Decision = Depends(check_bid)): ...

A deny (or a hold, an invalid identifier, …) raises :class:`CreditCheckRefused`, an
``HTTPException`` carrying the problem document; register :func:`problem_handler` to
answer it as ``application/problem+json``. For whole-app route rules use the ASGI
middleware as is: ``app.add_middleware(CreditCheckASGIMiddleware, checker=..., routes=[...])``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

try:
    from fastapi import HTTPException, Request, Response
    from starlette.requests import ClientDisconnect
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "credit_check.adapters.fastapi needs FastAPI: pip install 'credit-check[fastapi]'"
    ) from exc

from credit_check._checker_types import DecisionGroup
from credit_check._middleware._body import RequestData
from credit_check._middleware._guard import CheckerLike, Guard, OnError, Verdict
from credit_check._middleware._reader import MAX_BODY, read_kept_async
from credit_check._middleware._respond import HEADER, Reply
from credit_check._middleware._routes import Extractor, Route
from credit_check._models import Decision

__all__ = ["CreditCheckRefused", "CreditDecision", "problem_handler"]


class CreditCheckRefused(HTTPException):
    """The check refused the request (403 deny, 202 hold, 400/413/415/503).

    Attributes:
        reply: the status, headers and body the middleware would have answered with;
            ``detail`` holds the parsed problem document.
    """

    def __init__(self, reply: Reply) -> None:
        headers = {k: v for k, v in reply.headers if k.lower() not in ("content-type",
                                                                        "content-length")}
        super().__init__(status_code=reply.status, detail=json.loads(reply.body),
                         headers=headers)
        self.reply = reply


async def problem_handler(request: Request, exc: Exception) -> Response:
    """An exception handler answering :class:`CreditCheckRefused` exactly as the
    middleware does (``application/problem+json``):
    ``app.add_exception_handler(CreditCheckRefused, problem_handler)``."""
    assert isinstance(exc, CreditCheckRefused)
    reply = exc.reply
    return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))


class CreditDecision:
    """A dependency: check the request's subject and return the Decision.

    Args:
        checker: the :class:`~credit_check.Checker`.
        scenario: the transaction's scenario.
        subject: where the identifier is (``FromJSON("applicant.uscc")``, ``FromPath``
            reads FastAPI's path parameters, …).
        max_body: the largest body read; larger → 413.
        review, shadow, on_error, department: as for the middleware.
        route_options: ``legal_representative``, ``members``, ``case_id``, ``item_code``.

    The dependency returns a :class:`~credit_check.Decision` (a ``DecisionGroup`` when
    ``members`` is given). With ``on_error="proceed"`` a check that failed returns the
    decision if one was made but not recorded, else None, and the response carries
    ``X-Credit-Check: error``.
    """

    def __init__(self, checker: CheckerLike, *, scenario: str, subject: Extractor | None = None,
                 max_body: int = MAX_BODY, review: Literal["proceed", "hold"] = "proceed",
                 shadow: bool = False, on_error: OnError = "unavailable",
                 department: str | None = None, **route_options: Any) -> None:
        self.route = Route("*", "*", scenario, subject=subject, department=department,
                           **route_options)
        self.max_body = max_body
        self.guard = Guard(checker, review=review, shadow=shadow, on_error=on_error)

    @property
    def errors(self) -> int:
        """How many checks failed with an unexpected exception."""
        return self.guard.errors

    async def __call__(self, request: Request, response: Response) -> Any:
        try:  # everything we run in the host's request: a failure of ours is answered here
            verdict = await self._evaluate(request)
        except ClientDisconnect:
            raise  # the client's doing, for the framework to handle as it does its own
        except Exception as exc:
            verdict = self.guard.failed(None, exc, where=f"{request.method} {request.url.path}")
        if verdict.reply is not None:
            raise CreditCheckRefused(verdict.reply)
        if verdict.header is not None:
            response.headers[HEADER] = verdict.header
        if verdict.decision is not None:
            request.state.credit_decision = verdict.decision
        result: Decision | DecisionGroup | None = verdict.decision
        return result

    async def _evaluate(self, request: Request) -> Verdict:
        body: bytes | None = None
        form: dict[str, list[str]] | None = None
        if self.route.needs_body:
            try:
                # Request.body() keeps the body, so FastAPI's own body parameters still see it.
                body = await read_kept_async(request.headers.get("content-length"),
                                             request.body, self.max_body)
            except RuntimeError:
                # FastAPI parsed a Form() parameter first: the stream is gone, but the
                # parsed form is kept on the request.
                parsed = await request.form()
                form = {}
                for key, value in parsed.multi_items():
                    if isinstance(value, str):
                        form.setdefault(key, []).append(value)
        data = RequestData(headers=dict(request.headers.items()),
                           query_string=request.url.query,
                           path_params={k: str(v) for k, v in request.path_params.items()},
                           body=body, form=form)
        return await self.guard.evaluate_async(self.route, data)
