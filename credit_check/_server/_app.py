"""The sandbox list service as a Starlette application: protocol v1 (DESIGN §6) and v1.1
(§9), with problem+json errors (RFC 9457) for every refusal. This module holds the
department-facing calls; the admin calls are in ``_admin``.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from credit_check._crypto import Signer, constant_time_equal
from credit_check._exceptions import InvalidSubjectId
from credit_check._models import FeedbackKind, describe_validation_error
from credit_check._receipts import key_id, keys_message, receipt_claims, sign_receipt
from credit_check._server._http import PROBLEM, Problem, decode_json, problem_response
from credit_check._server._import import validated_id
from credit_check._server._intake import take_feedback
from credit_check._server._signed import catalog_answer, catalog_etag, snapshot_answer
from credit_check._server._store import (
    CATALOG_SCHEMA,
    ApiKey,
    SnapshotGone,
    Store,
    StoreUnavailable,
)

__all__ = ["PROBLEM", "Problem", "Sandbox", "create_app", "problem_response"]

logger = logging.getLogger("credit_check.sandbox")

BODY_LIMIT = 8 * 1024 * 1024
BATCH_LIMIT = 1000
SCHEMA_HEADER = "x-credit-check-schema"


class _Ids(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(min_length=1, max_length=BATCH_LIMIT)
    receipt: bool = False


def _validated_id(raw: str) -> tuple[str, str]:
    try:
        return validated_id(raw)
    except InvalidSubjectId as exc:
        raise Problem(400, str(exc), title="Invalid subject identifier") from None


def _client_schema(request: Request) -> int:
    """The catalogue schema the client declares it understands (none declared: 1)."""
    text = request.headers.get(SCHEMA_HEADER)
    if text is None:
        return 1
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 6 or int(text) < 1:
        raise Problem(400, "X-Credit-Check-Schema must be a positive integer, the catalogue "
                      f"schema the client understands; got {text[:20]!r}")
    return int(text)


def _wants_receipt(request: Request) -> bool:
    text = request.query_params.get("receipt")
    if text is None or text.lower() in ("0", "false"):
        return False
    if text.lower() in ("1", "true"):
        return True
    raise Problem(400, f"receipt must be 1 (sign the answer) or 0, got {text[:20]!r}")


class Sandbox:
    """Request handlers over one :class:`Store`."""

    def __init__(self, store: Store, signer: Signer, admin_key: str) -> None:
        from credit_check._server._service_metrics import ServiceMetrics

        self.store = store
        self.signer = signer
        self.admin_key = admin_key
        self.metrics = ServiceMetrics.create(store)  # None without the metrics extra

    # -- plumbing ----------------------------------------------------------------------

    def auth(self, request: Request, *, admin: bool = False) -> ApiKey:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(401, "missing Authorization: Bearer <api key>")
        token = token.strip()
        if constant_time_equal(token, self.admin_key):
            return ApiKey("admin", "admin", b"", True, admin=True)
        key = self.store.find_key(token)
        if key is None:
            raise Problem(401, "the API key is unknown or revoked")
        if admin:
            raise Problem(403, "this call needs the admin key, not a department key")
        return key

    async def body(self, request: Request, limit: int = BODY_LIMIT) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise Problem(413, f"the body is larger than the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Problem(413, f"the body is larger than the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def json(self, request: Request, limit: int = BODY_LIMIT) -> Any:
        return decode_json(await self.body(request, limit))

    @staticmethod
    def model(model: type[BaseModel], data: Any, what: str) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise Problem(422, describe_validation_error(exc, data, what)) from None

    # -- lookups -----------------------------------------------------------------------

    def receipt(self, answer: dict[str, Any], key: ApiKey) -> dict[str, Any]:
        """The signed receipt of one answer (§9.4), for the department that asked."""
        if self.metrics is not None:
            self.metrics.receipts.inc()
        return sign_receipt(self.signer.sign, self.signer.public_key,
                            receipt_claims(answer, key.department))

    async def subject(self, request: Request) -> Response:
        key = self.auth(request)
        code, kind = _validated_id(request.path_params["subject_id"])
        signed = _wants_receipt(request)

        def run() -> dict[str, Any]:
            answer = self.store.lookup(code, kind, persons=key.allow_persons or key.admin,
                                       history=key.admin)
            if signed:
                answer["receipt"] = self.receipt(answer, key)
            if self.metrics is not None:
                self.metrics.subjects.labels("single").inc()
            return answer

        return JSONResponse(await run_in_threadpool(run))

    async def batch(self, request: Request) -> Response:
        key = self.auth(request)
        asked = self.model(_Ids, await self.json(request), "batch")
        ids = asked.ids
        validated = []
        errors = []
        for i, raw in enumerate(ids):
            try:
                validated.append(_validated_id(raw))
            except Problem as exc:
                errors.append({"field": f"ids[{i}]", "problem": exc.detail})
        if errors:
            raise Problem(400, f"{len(errors)} of the ids are invalid", errors=errors[:50])

        def run() -> list[dict[str, Any]]:
            persons = key.allow_persons or key.admin
            answers = [self.store.lookup(code, kind, persons=persons, history=key.admin)
                       for code, kind in validated]
            if asked.receipt:
                for answer in answers:
                    answer["receipt"] = self.receipt(answer, key)
            if self.metrics is not None:
                self.metrics.subjects.labels("batch").inc(len(answers))
            return answers

        return JSONResponse({"results": await run_in_threadpool(run)})

    # -- signed data -------------------------------------------------------------------

    async def keys(self, request: Request) -> Response:
        self.auth(request)
        own = key_id(self.signer.public_key)
        recorded = await run_in_threadpool(self.store.signing_keys)
        keys = [{"kid": k["kid"], "alg": "Ed25519", "public_key": k["public_key"],
                 "status": "current" if k["valid_until"] is None else "previous",
                 "valid_from": k["valid_from"], "valid_until": k["valid_until"]}
                for k in recorded]
        if own not in {k["kid"] for k in keys}:
            keys.append({"kid": own, "alg": "Ed25519", "public_key": self.signer.public_key,
                         "status": "current", "valid_from": None, "valid_until": None})
        # The key this instance signs with first: wave-1 clients take the first key.
        keys.sort(key=lambda k: k["kid"] != own)
        return JSONResponse({"keys": keys, "signature": self.signer.sign(keys_message(keys))})

    async def capabilities(self, request: Request) -> Response:
        key = self.auth(request)
        head = await run_in_threadpool(self.store.refresh)
        current = self.store.catalog()
        return JSONResponse({
            "protocol": "1.1",
            "catalog_schema": current.schema if current else CATALOG_SCHEMA,
            "epoch": head.epoch,
            "record_kinds": [k.value for k in FeedbackKind],
            "receipts": True,
            "key": None if key.admin else {"key_id": key.key_id, "department": key.department,
                                           "allow_persons": key.allow_persons}})

    async def catalog(self, request: Request) -> Response:
        self.auth(request)
        schema = _client_schema(request)
        head = await run_in_threadpool(self.store.refresh)
        current = self.store.catalog()
        if current is None:
            raise Problem(404, "no catalogue is loaded; PUT /v1/admin/catalog first")
        served = current if current.schema <= schema else self.store.catalog(schema)
        if served is None:
            raise Problem(406, f"the current catalogue needs schema {current.schema} and no "
                          f"catalogue for schema {schema} is kept: upgrade credit-check",
                          title="Upgrade required")
        etag = catalog_etag(served)
        asked = request.headers.get("if-none-match", "")
        # RFC 9110: a list of tags, each possibly weak, or "*"
        if asked.strip() == "*" or etag in {t.strip().removeprefix("W/")
                                            for t in asked.split(",")}:
            return Response(status_code=304, headers={"ETag": etag})
        body = catalog_answer(self.signer, served, head.epoch, current.schema > schema)
        return JSONResponse(body, headers={"ETag": etag})

    async def snapshot(self, request: Request) -> Response:
        self.auth(request)
        since = request.query_params.get("since")
        if since is not None and (not (since.isascii() and since.isdigit()) or len(since) > 18):
            raise Problem(400, f"since must be a snapshot version number, got {since[:40]!r}")

        def answer() -> dict[str, Any]:
            head = self.store.refresh()
            if since is None:
                return snapshot_answer(self.signer, self.store.snapshot(), head)
            delta = self.store.delta(int(since))
            return snapshot_answer(self.signer, delta.state, head, delta)

        try:
            return JSONResponse(await run_in_threadpool(answer))
        except SnapshotGone as exc:
            raise Problem(410, str(exc), title="Delta no longer available") from None

    # -- feedback ----------------------------------------------------------------------

    async def feedback(self, request: Request) -> Response:
        key = self.auth(request)
        if key.admin:
            raise Problem(403, "feedback is sent with a department key")
        raw = await self.body(request)

        def take() -> dict[str, Any]:
            good, rejected = take_feedback(key, raw)
            accepted, duplicates = self.store.add_feedback(good)
            answer = {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
            if self.metrics is not None:
                self.metrics.feedback_taken(answer)
            return answer

        # Reading and checking 500 records takes milliseconds: off the event loop.
        return JSONResponse(await run_in_threadpool(take))

    async def openapi(self, request: Request) -> Response:
        text = resources.files("credit_check._server").joinpath("openapi.json").read_text()
        return Response(text, media_type="application/json")


def create_app(store: Store, signer: Signer, admin_key: str) -> Starlette:
    """The sandbox as an ASGI application."""
    from credit_check._server._admin import Admin
    from credit_check._server._health import Health
    from credit_check._server._service_metrics import metrics_endpoint

    s = Sandbox(store, signer, admin_key)
    a = Admin(s)
    h = Health(s)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if isinstance(exc, Problem):
            return problem_response(exc.status_code, exc.detail, exc.title, exc.errors)
        return problem_response(exc.status_code, exc.detail)

    async def on_error(request: Request, exc: Exception) -> Response:
        return problem_response(500, "internal error in the sandbox; see its log")

    async def on_unavailable(request: Request, exc: Exception) -> Response:
        # The database is down (retried already): the client tries again later.
        logger.error("%s", exc)
        response = problem_response(503, "the sandbox's database is unavailable; try again "
                                         "shortly")
        response.headers["Retry-After"] = "5"
        return response

    routes = [
        Route("/v1/subjects:batch", s.batch, methods=["POST"]),
        Route("/v1/subjects/{subject_id}", s.subject, methods=["GET"]),
        Route("/v1/catalog", s.catalog, methods=["GET"]),
        Route("/v1/snapshot", s.snapshot, methods=["GET"]),
        Route("/v1/feedback", s.feedback, methods=["POST"]),
        Route("/v1/keys", s.keys, methods=["GET"]),
        Route("/v1/capabilities", s.capabilities, methods=["GET"]),
        Route("/v1/admin/catalog", a.put_catalog, methods=["PUT"]),
        Route("/v1/admin/entries", a.import_entries, methods=["POST"]),
        Route("/v1/admin/entries/{entry_id}/status", a.entry_status, methods=["POST"]),
        Route("/v1/admin/keys", a.create_key, methods=["POST"]),
        Route("/v1/admin/keys/{key_id}/revoke", a.revoke_key, methods=["POST"]),
        Route("/v1/admin/epoch", a.raise_epoch, methods=["POST"]),
        Route("/v1/admin/feedback", a.admin_feedback, methods=["GET"]),
        Route("/v1/admin/stats", a.stats, methods=["GET"]),
        Route("/v1/admin/showcase", a.showcase, methods=["GET"]),
        Route("/openapi.json", s.openapi, methods=["GET"]),
        Route("/healthz", h.healthz, methods=["GET"]),
        Route("/readyz", h.readyz, methods=["GET"]),
        Route("/metrics", functools.partial(metrics_endpoint, s.metrics), methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: on_http_error,
                                                        StoreUnavailable: on_unavailable,
                                                        Exception: on_error})
