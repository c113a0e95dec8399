"""The sandbox list service as a Starlette application: protocol v1 (DESIGN §6), with
problem+json errors (RFC 9457) for every refusal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from credit_check._crypto import Signer, catalog_message, constant_time_equal
from credit_check._exceptions import CatalogError, InvalidSubjectId
from credit_check._models import (
    CST,
    Catalog,
    EntryStatus,
    FeedbackRecord,
    Timestamp,
    describe_validation_error,
)
from credit_check._server._import import (
    ImportRefused,
    read_csv_entries,
    read_json_entries,
    release,
    validated_id,
)
from credit_check._server._prefix_index import SnapshotGone
from credit_check._server._store import ApiKey, Store, StoreError

BODY_LIMIT = 8 * 1024 * 1024
ADMIN_BODY_LIMIT = 256 * 1024 * 1024
BATCH_LIMIT = 1000
FEEDBACK_LIMIT = 500
PROBLEM = "application/problem+json"

logger = logging.getLogger("credit_check.sandbox")


class Problem(HTTPException):
    """A refusal answered as problem+json."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(status, detail)
        self.title = title
        self.errors = errors


def problem_response(status: int, detail: str, title: str | None = None,
                     errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    from http import HTTPStatus

    body: dict[str, Any] = {"type": "about:blank",
                            "title": title or HTTPStatus(status).phrase,
                            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


class _StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: EntryStatus
    effective_until: Timestamp | None = None


class _NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    department: str = Field(min_length=1, max_length=256)
    allow_persons: bool = False


class _Ids(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(min_length=1, max_length=BATCH_LIMIT)


def _validated_id(raw: str) -> tuple[str, str]:
    try:
        return validated_id(raw)
    except InvalidSubjectId as exc:
        raise Problem(400, str(exc), title="Invalid subject identifier") from None


class Sandbox:
    """Request handlers over one :class:`Store`."""

    def __init__(self, store: Store, signer: Signer, admin_key: str) -> None:
        self.store = store
        self.signer = signer
        self.admin_key = admin_key

    # -- plumbing ----------------------------------------------------------------------

    def _auth(self, request: Request, *, admin: bool = False) -> ApiKey:
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

    async def _body(self, request: Request, limit: int = BODY_LIMIT) -> bytes:
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

    async def _json(self, request: Request, limit: int = BODY_LIMIT) -> Any:
        return _decode_json(await self._body(request, limit))

    @staticmethod
    def _model(model: type[BaseModel], data: Any, what: str) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise Problem(422, describe_validation_error(exc, data, what)) from None

    # -- lookups -----------------------------------------------------------------------

    async def subject(self, request: Request) -> Response:
        key = self._auth(request)
        code, kind = _validated_id(request.path_params["subject_id"])
        answer = await run_in_threadpool(self.store.lookup, code, kind,
                                         persons=key.allow_persons or key.admin)
        return JSONResponse(answer)

    async def batch(self, request: Request) -> Response:
        key = self._auth(request)
        ids = self._model(_Ids, await self._json(request), "batch").ids
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
            return [self.store.lookup(code, kind, persons=persons) for code, kind in validated]

        return JSONResponse({"results": await run_in_threadpool(run)})

    # -- signed data -------------------------------------------------------------------

    async def keys(self, request: Request) -> Response:
        self._auth(request)
        kid = hashlib.sha256(self.signer.public_key.encode()).hexdigest()[:16]
        return JSONResponse({"keys": [{"kid": kid, "alg": "Ed25519",
                                       "public_key": self.signer.public_key}]})

    async def catalog(self, request: Request) -> Response:
        self._auth(request)
        catalog = self.store.catalog
        if catalog is None:
            raise Problem(404, "no catalogue is loaded; PUT /v1/admin/catalog first")
        raw = catalog.model_dump(mode="json")
        etag = f'"{catalog.version}-{hashlib.sha256(catalog_message(raw)).hexdigest()[:16]}"'
        asked = request.headers.get("if-none-match", "")
        # RFC 9110: a list of tags, each possibly weak, or "*"
        if asked.strip() == "*" or etag in {t.strip().removeprefix("W/")
                                            for t in asked.split(",")}:
            return Response(status_code=304, headers={"ETag": etag})
        return JSONResponse({"catalog": raw, "signature": self.signer.sign(catalog_message(raw))},
                            headers={"ETag": etag})

    async def snapshot(self, request: Request) -> Response:
        self._auth(request)
        since = request.query_params.get("since")
        if since is None:
            return JSONResponse(await run_in_threadpool(self.store.index.full))
        if not (since.isascii() and since.isdigit()) or len(since) > 18:
            raise Problem(400, f"since must be a snapshot version number, got {since[:40]!r}")
        try:
            body = await run_in_threadpool(self.store.index.delta, int(since))
        except SnapshotGone as exc:
            raise Problem(410, str(exc), title="Delta no longer available") from None
        return JSONResponse(body)

    # -- feedback ----------------------------------------------------------------------

    async def feedback(self, request: Request) -> Response:
        key = self._auth(request)
        if key.admin:
            raise Problem(403, "feedback is sent with a department key")
        raw = await self._body(request)
        # Reading and checking 500 records takes milliseconds: off the event loop.
        return JSONResponse(await run_in_threadpool(self._take_feedback, key, raw))

    def _take_feedback(self, key: ApiKey, raw: bytes) -> dict[str, Any]:
        data = _decode_json(raw)
        records = data.get("records") if isinstance(data, dict) else None
        if not isinstance(records, list):
            raise Problem(422, "the body must be {\"records\": [...]}")
        if len(records) > FEEDBACK_LIMIT:
            raise Problem(413, f"at most {FEEDBACK_LIMIT} records per call, got {len(records)}")
        # Each record is checked on its own (a bad one never costs the others their place),
        # then the good ones are stored in one transaction.
        good: list[tuple[dict[str, Any], bytes]] = []
        rejected: list[dict[str, Any]] = []
        for i, record in enumerate(records):
            body, reason = self._check_record(key, record)
            if body is not None:
                good.append((record, body))
                continue
            rid = record.get("record_id") if isinstance(record, dict) else None
            rejected.append({"record_id": rid if isinstance(rid, str) else None,
                             "index": i, "reason": reason})
        accepted, duplicates = self.store.add_feedback(key, good)
        return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}

    def _check_record(self, key: ApiKey, record: Any) -> tuple[bytes | None, str]:
        """The signed body of a good record, or None and why the record is refused."""
        if not isinstance(record, dict):
            return None, "a record must be a JSON object"
        try:
            FeedbackRecord.model_validate(record)
        except ValidationError as exc:
            return None, describe_validation_error(exc, record, "feedback record")[:300]
        body = self.store.signed_body(key, record)
        if body is None:
            return None, "hmac does not verify with this department's key"
        return body, ""

    # -- admin -------------------------------------------------------------------------

    async def put_catalog(self, request: Request) -> Response:
        self._auth(request, admin=True)
        data = await self._json(request)
        try:
            catalog = Catalog.load(data)
        except CatalogError as exc:
            raise Problem(422, str(exc), title="Catalogue refused") from None
        version = await run_in_threadpool(self.store.put_catalog, catalog)
        return JSONResponse({"version": catalog.version, "snapshot_version": version})

    def _import(self, raw: bytes, ctype: str) -> dict[str, int]:
        """Parse, check and store a whole import; any problem refuses all of it."""
        started = time.perf_counter()
        try:
            if ctype == "text/csv":
                rows = read_csv_entries(raw)
            else:
                rows = read_json_entries(_decode_json(raw))
        except ImportRefused as exc:
            raise Problem(exc.status, exc.detail, errors=exc.errors) from None
        checked = time.perf_counter()
        try:
            result = self.store.upsert_rows(rows)
        except StoreError as exc:
            raise Problem(422, str(exc)) from None
        finally:
            count = len(rows)
            release(rows)
        logger.info("import of %d entries: parsed and checked in %.2f s, written in %.2f s",
                    count, checked - started, time.perf_counter() - checked)
        return result

    async def import_entries(self, request: Request) -> Response:
        self._auth(request, admin=True)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await self._body(request, ADMIN_BODY_LIMIT)
        # Parsing and checking a large import takes seconds: off the event loop, so that
        # lookups keep being answered meanwhile (and in chunks, see _import).
        return JSONResponse(await run_in_threadpool(self._import, raw, ctype))

    async def entry_status(self, request: Request) -> Response:
        self._auth(request, admin=True)
        change = self._model(_StatusChange, await self._json(request), "status change")
        entry_id = request.path_params["entry_id"]
        try:
            entry = await run_in_threadpool(self.store.set_status, entry_id, change.status,
                                            change.effective_until)
        except KeyError:
            raise Problem(404, f"no entry with entry_id {entry_id[:128]!r}") from None
        return JSONResponse(entry.model_dump(mode="json"))

    async def create_key(self, request: Request) -> Response:
        self._auth(request, admin=True)
        new = self._model(_NewKey, await self._json(request), "key request")
        return JSONResponse(self.store.create_key(new.department, new.allow_persons),
                            status_code=201)

    async def revoke_key(self, request: Request) -> Response:
        self._auth(request, admin=True)
        key_id = request.path_params["key_id"]
        if not self.store.revoke_key(key_id):
            raise Problem(404, f"no key with key_id {key_id[:64]!r}")
        return JSONResponse({"key_id": key_id, "revoked": True})

    async def admin_feedback(self, request: Request) -> Response:
        self._auth(request, admin=True)
        since = request.query_params.get("since")
        if since is not None:
            try:
                # received_at is stored as CST ISO text, so compare in CST
                since = TypeAdapter(Timestamp).validate_python(since).astimezone(CST).isoformat()
            except (ValidationError, OverflowError):
                raise Problem(400, f"since must be an ISO 8601 time, got {since[:40]!r}") from None
        records = await run_in_threadpool(self.store.feedback, since, 1_000_000)
        return JSONResponse({"records": records})

    async def stats(self, request: Request) -> Response:
        self._auth(request, admin=True)
        return JSONResponse(await run_in_threadpool(self.store.stats))

    async def openapi(self, request: Request) -> Response:
        text = resources.files("credit_check._server").joinpath("openapi.json").read_text()
        return Response(text, media_type="application/json")


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; stored, they would make later answers fail to encode
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Problem(400, "the body is not valid JSON: nested too deeply") from None


def create_app(store: Store, signer: Signer, admin_key: str) -> Starlette:
    """The sandbox as an ASGI application."""
    s = Sandbox(store, signer, admin_key)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if isinstance(exc, Problem):
            return problem_response(exc.status_code, exc.detail, exc.title, exc.errors)
        return problem_response(exc.status_code, exc.detail)

    async def on_error(request: Request, exc: Exception) -> Response:
        return problem_response(500, "internal error in the sandbox; see its log")

    routes = [
        Route("/v1/subjects:batch", s.batch, methods=["POST"]),
        Route("/v1/subjects/{subject_id}", s.subject, methods=["GET"]),
        Route("/v1/catalog", s.catalog, methods=["GET"]),
        Route("/v1/snapshot", s.snapshot, methods=["GET"]),
        Route("/v1/feedback", s.feedback, methods=["POST"]),
        Route("/v1/keys", s.keys, methods=["GET"]),
        Route("/v1/admin/catalog", s.put_catalog, methods=["PUT"]),
        Route("/v1/admin/entries", s.import_entries, methods=["POST"]),
        Route("/v1/admin/entries/{entry_id}/status", s.entry_status, methods=["POST"]),
        Route("/v1/admin/keys", s.create_key, methods=["POST"]),
        Route("/v1/admin/keys/{key_id}/revoke", s.revoke_key, methods=["POST"]),
        Route("/v1/admin/feedback", s.admin_feedback, methods=["GET"]),
        Route("/v1/admin/stats", s.stats, methods=["GET"]),
        Route("/openapi.json", s.openapi, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: on_http_error,
                                                        Exception: on_error})
