"""The sandbox's admin calls (protocol v1 and v1.1): the catalogue with its serial,
entries and their status changes, department keys, the epoch, feedback (paged), the
monitoring stats, and the demo data's showcase subjects."""

from __future__ import annotations

import logging
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from credit_check._exceptions import CatalogError
from credit_check._models import CST, Catalog, EntryStatus, Timestamp
from credit_check._server._app import Sandbox
from credit_check._server._demo import showcase
from credit_check._server._http import Problem, decode_json
from credit_check._server._import import (
    ImportRefused,
    read_csv_entries,
    read_json_entries,
    release,
)
from credit_check._server._paging import page_limit, read_cursor, stats_query
from credit_check._server._store import SerialConflict, StoreError

ADMIN_BODY_LIMIT = 256 * 1024 * 1024

logger = logging.getLogger("credit_check.sandbox")

Reason = Literal["objection_raised", "objection_rejected", "objection_upheld_wrong",
                 "repaired", "expired", "removed"]
# The status each reason leads to: a reason that says otherwise is a mistake of the caller.
REASON_STATUS = {"objection_raised": EntryStatus.OBJECTION_PENDING,
                 "objection_rejected": EntryStatus.ACTIVE,
                 "objection_upheld_wrong": EntryStatus.REMOVED,
                 "repaired": EntryStatus.REPAIRED, "expired": EntryStatus.EXPIRED,
                 "removed": EntryStatus.REMOVED}


class _StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: EntryStatus
    effective_until: Timestamp | None = None
    reason: Reason | None = None

    @model_validator(mode="after")
    def _reason_fits(self) -> _StatusChange:
        if self.reason is not None and REASON_STATUS[self.reason] is not self.status:
            raise ValueError(f"reason {self.reason!r} goes with status "
                             f"{REASON_STATUS[self.reason].value!r}, not {self.status.value!r}")
        return self


class _NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    department: str = Field(min_length=1, max_length=256)
    allow_persons: bool = False


class Admin:
    """The admin handlers, over the plumbing of one :class:`Sandbox`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.s = sandbox
        self.store = sandbox.store

    async def put_catalog(self, request: Request) -> Response:
        self.s.auth(request, admin=True)
        data = await self.s.json(request)
        serial = None
        if isinstance(data, dict) and "serial" in data:
            data = dict(data)
            serial = data.pop("serial")
            if type(serial) is not int or not 1 <= serial < 2**62:
                raise Problem(422, "serial must be a positive integer above the current "
                              f"catalogue's serial, got {str(serial)[:40]!r}",
                              title="Catalogue refused")
        try:
            catalog = Catalog.load(data)
        except CatalogError as exc:
            raise Problem(422, str(exc), title="Catalogue refused") from None
        try:
            stored, version = await run_in_threadpool(
                lambda: self.store.put_catalog(catalog, serial=serial))
        except SerialConflict as exc:
            raise Problem(409, str(exc), title="Catalogue serial goes backwards") from None
        return JSONResponse({"version": catalog.version, "serial": stored.serial,
                             "snapshot_version": version})

    def _import(self, raw: bytes, ctype: str) -> dict[str, int]:
        """Parse, check and store a whole import; any problem refuses all of it."""
        started = time.perf_counter()
        try:
            if ctype == "text/csv":
                rows = read_csv_entries(raw)
            else:
                rows = read_json_entries(decode_json(raw))
        except ImportRefused as exc:
            raise Problem(exc.status, exc.detail, errors=exc.errors) from None
        checked = time.perf_counter()
        try:
            result = self.store.upsert(rows)
        except StoreError as exc:
            raise Problem(422, str(exc)) from None
        finally:
            count = len(rows)
            release(rows)
        logger.info("import of %d entries: parsed and checked in %.2f s, written in %.2f s",
                    count, checked - started, time.perf_counter() - checked)
        return result

    async def import_entries(self, request: Request) -> Response:
        self.s.auth(request, admin=True)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await self.s.body(request, ADMIN_BODY_LIMIT)
        # Parsing and checking a large import takes seconds: off the event loop, so that
        # lookups keep being answered meanwhile (and in chunks, see _import).
        return JSONResponse(await run_in_threadpool(self._import, raw, ctype))

    async def entry_status(self, request: Request) -> Response:
        self.s.auth(request, admin=True)
        change = self.s.model(_StatusChange, await self.s.json(request), "status change")
        entry_id = request.path_params["entry_id"]
        try:
            entry = await run_in_threadpool(self.store.set_status, entry_id, change.status,
                                            change.effective_until, change.reason)
        except KeyError:
            raise Problem(404, f"no entry with entry_id {entry_id[:128]!r}") from None
        return JSONResponse(entry.model_dump(mode="json"))

    async def create_key(self, request: Request) -> Response:
        self.s.auth(request, admin=True)
        new = self.s.model(_NewKey, await self.s.json(request), "key request")
        return JSONResponse(await run_in_threadpool(self.store.create_key, new.department,
                                                    new.allow_persons), status_code=201)

    async def revoke_key(self, request: Request) -> Response:
        self.s.auth(request, admin=True)
        key_id = request.path_params["key_id"]
        if not await run_in_threadpool(self.store.revoke_key, key_id):
            raise Problem(404, f"no key with key_id {key_id[:64]!r}")
        return JSONResponse({"key_id": key_id, "revoked": True})

    async def raise_epoch(self, request: Request) -> Response:
        self.s.auth(request, admin=True)
        return JSONResponse({"epoch": await run_in_threadpool(self.store.raise_epoch)})

    async def admin_feedback(self, request: Request) -> Response:
        self.s.auth(request, admin=True)
        params = request.query_params
        since = params.get("since")
        if since is not None:
            try:
                # received_at is stored as CST ISO text, so compare in CST
                since = TypeAdapter(Timestamp).validate_python(since).astimezone(CST).isoformat()
            except (ValidationError, OverflowError):
                raise Problem(400, f"since must be an ISO 8601 time, got {since[:40]!r}") from None
        limit = page_limit(params.get("limit"))
        after = read_cursor(params.get("cursor"))
        page = await run_in_threadpool(self.store.feedback_page, since, after, limit)
        return JSONResponse({"records": page.records,
                             "next_cursor": str(page.after) if page.after else None,
                             "has_more": page.more})

    async def stats(self, request: Request) -> Response:
        self.s.auth(request, admin=True)
        query = stats_query(request.query_params)
        return JSONResponse(await run_in_threadpool(self.store.stats, query))

    async def showcase(self, request: Request) -> Response:
        self.s.auth(request, admin=True)
        if await run_in_threadpool(self.store.meta, "demo_loaded") is None:
            raise Problem(404, "this sandbox holds no demo data; start it with "
                               "'credit-check serve --demo'")
        return JSONResponse({"fictional": True, "subjects": showcase()})
