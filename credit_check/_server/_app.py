"""The sandbox list service as a Starlette application: protocol v1 (DESIGN §6), with
problem+json errors (RFC 9457) for every refusal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
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
from credit_check._ids import detect_kind, validate_id_number, validate_uscc
from credit_check._models import (
    CST,
    Catalog,
    EntryStatus,
    FeedbackRecord,
    ListEntry,
    Timestamp,
    describe_validation_error,
)
from credit_check._server._prefix_index import SnapshotGone
from credit_check._server._store import ApiKey, Store, StoreError

BODY_LIMIT = 8 * 1024 * 1024
ADMIN_BODY_LIMIT = 256 * 1024 * 1024
BATCH_LIMIT = 1000
FEEDBACK_LIMIT = 500
PROBLEM = "application/problem+json"


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


_ENTRIES = TypeAdapter(list[ListEntry])


def _validated_id(raw: str) -> tuple[str, str]:
    kind = detect_kind(raw)
    try:
        code = validate_id_number(raw) if kind == "person" else validate_uscc(raw)
    except InvalidSubjectId as exc:
        raise Problem(400, str(exc), title="Invalid subject identifier") from None
    return code, kind


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
        data = await self._json(request)
        records = data.get("records") if isinstance(data, dict) else None
        if not isinstance(records, list):
            raise Problem(422, "the body must be {\"records\": [...]}")
        if len(records) > FEEDBACK_LIMIT:
            raise Problem(413, f"at most {FEEDBACK_LIMIT} records per call, got {len(records)}")
        valid: list[bool] = []
        rejected: list[dict[str, Any]] = []
        for i, record in enumerate(records):
            reason = self._record_problem(key, record)
            valid.append(reason is None)
            if reason is not None:
                rid = record.get("record_id") if isinstance(record, dict) else None
                rejected.append({"record_id": rid if isinstance(rid, str) else None,
                                 "index": i, "reason": reason})
        accepted, duplicates = await run_in_threadpool(
            self.store.add_feedback, key, records, valid)
        return JSONResponse({"accepted": accepted, "duplicates": duplicates,
                             "rejected": rejected})

    def _record_problem(self, key: ApiKey, record: Any) -> str | None:
        if not isinstance(record, dict):
            return "a record must be a JSON object"
        try:
            FeedbackRecord.model_validate(record)
        except ValidationError as exc:
            return describe_validation_error(exc, record, "feedback record")[:300]
        if not self.store.verify_hmac(key, record):
            return "hmac does not verify with this department's key"
        return None

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

    def _prepare_entries(self, raw: bytes, ctype: str) -> list[ListEntry]:
        """Parse and validate a whole import; any problem refuses all of it."""
        lines: list[int] = []

        def label(i: Any, field: str) -> str:
            """Where a problem is: the CSV line, or the index in the JSON list."""
            if lines and isinstance(i, int) and 0 <= i < len(lines):
                return f"line {lines[i]}: {field}"
            return f"entries[{i}].{field}"

        items: Any
        if ctype == "text/csv":
            items, lines = _csv_entries(raw)
        else:
            data = _decode_json(raw)
            items = data.get("entries") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise Problem(422, "the body must be {\"entries\": [...]} or text/csv")
        # ListEntry ignores unknown fields; an import must not (a misspelt effective_until
        # would silently make a listing permanent).
        unknown = [{"field": label(i, name)[:200], "problem": "unknown field"}
                   for i, item in enumerate(items) if isinstance(item, dict)
                   for name in item if name not in ListEntry.model_fields]
        if unknown:
            raise Problem(422, f"{len(unknown)} unknown fields in the entries; nothing was "
                          "imported", errors=unknown[:50])
        try:
            entries = _ENTRIES.validate_python(items)
        except ValidationError as exc:
            errors = [{"field": label(e["loc"][0], ".".join(str(p) for p in e["loc"][1:])),
                       "problem": e["msg"]}
                      for e in exc.errors(include_url=False, include_input=False)[:50]]
            raise Problem(422, f"{exc.error_count()} problems in the entries; nothing was "
                          "imported", errors=errors) from None
        errors = []
        first: dict[str, int] = {}
        for i, e in enumerate(entries):
            # A repeated entry_id would be counted twice in the prefix set, and its subject
            # would then stay listed after a repair.
            if first.setdefault(e.entry_id, i) != i:
                errors.append({"field": label(i, "entry_id"), "problem": "the same entry_id "
                               f"is given at {label(first[e.entry_id], 'entry_id')}"})
            for field, value in (("subject_id", e.subject_id),
                                 ("legal_representative_id", e.legal_representative_id)):
                if value is None:
                    continue
                try:
                    code, kind = _validated_id(value)
                except Problem as exc:
                    errors.append({"field": label(i, field), "problem": exc.detail})
                    continue
                if code != value:
                    errors.append({"field": label(i, field),
                                   "problem": "must be the normalised identifier"})
                elif field == "subject_id" and kind != e.subject_kind.value:
                    errors.append({"field": label(i, "subject_kind"),
                                   "problem": f"the subject id is a {kind}'s identifier"})
        if errors:
            raise Problem(422, f"{len(errors)} problems in the entries; nothing was imported",
                          errors=errors[:50])
        return entries

    async def import_entries(self, request: Request) -> Response:
        self._auth(request, admin=True)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await self._body(request, ADMIN_BODY_LIMIT)
        # Parsing and validating a large import takes seconds: off the event loop, so that
        # lookups keep being answered meanwhile.
        entries = await run_in_threadpool(self._prepare_entries, raw, ctype)
        try:
            result = await run_in_threadpool(self.store.upsert_entries, entries)
        except StoreError as exc:
            raise Problem(422, str(exc)) from None
        return JSONResponse(result)

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


def _csv_entries(raw: bytes) -> tuple[list[dict[str, Any]], list[int]]:
    """The CSV rows as entry dicts, and the line each row is on (ends on, if quoted text
    spans lines)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"the CSV is not UTF-8 (byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    needed = {"entry_id", "list_code", "list_kind", "subject_id", "subject_kind",
              "issuing_department", "effective_from"}
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise Problem(422, f"the CSV header line is malformed: {exc}") from None
    missing = needed - set(header or [])
    if missing:
        raise Problem(422, f"the CSV header lacks {', '.join(sorted(missing))}")
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    errors = []
    try:
        for row in reader:
            if None in row or None in row.values():
                errors.append({"field": f"line {reader.line_num}",
                               "problem": "wrong number of columns"})
                continue
            lines.append(reader.line_num)
            rows.append({k: (v if v != "" else None) if k in (
                "effective_until", "legal_representative_id", "listed_on", "name") else v
                for k, v in row.items()})
    except csv.Error as exc:
        raise Problem(422, f"the CSV is malformed at line {reader.line_num}: {exc}") from None
    if errors:
        raise Problem(422, f"{len(errors)} CSV rows are malformed; nothing was imported",
                      errors=errors[:50])
    return rows, lines


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
