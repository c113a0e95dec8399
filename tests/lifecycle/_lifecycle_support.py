"""Helpers of the case-lifecycle tests: the real sandbox over loopback, a settable clock,
admin calls, and list entries to add mid-case (a uniquely named module)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

import requests

from credit_check import Checker
from credit_check._models import CST

ENCRYPTION_KEY = base64.b64encode(b"lifecycle-test-key-32-bytes-long").decode()
DEPARTMENT = "示范市行政审批局"


class Clock:
    """A settable clock that follows real time until a test moves it."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(CST) + self.offset

    def set(self, moment: dt.datetime) -> None:
        self.offset = moment - dt.datetime.now(CST)


MakeChecker = Callable[..., Checker]


def admin(sandbox: Any, method: str, path: str, **kw: Any) -> Any:
    """Call the sandbox's admin API (raising on an error answer)."""
    resp = requests.request(method, sandbox.base_url + path, timeout=10,
                            headers={"Authorization": f"Bearer {sandbox.admin_key}"}, **kw)
    resp.raise_for_status()
    return resp.json() if resp.content else None


def list_subject(sandbox: Any, entry_id: str, subject_id: str, *,
                 list_code: str = "tax.major_violation", kind: str = "black",
                 status: str = "active", subject_kind: str = "organization") -> None:
    """An admin change: put a subject on a list from today."""
    today = dt.datetime.now(CST).date().isoformat()
    admin(sandbox, "POST", "/v1/admin/entries", json={"entries": [{
        "entry_id": entry_id, "list_code": list_code, "list_kind": kind,
        "subject_id": subject_id, "subject_kind": subject_kind, "name": "示例",
        "issuing_department": "国家税务总局示范市税务局", "basis_document": "示税〔2026〕1号",
        "reason": "示例（虚构）", "listed_on": today, "effective_from": today,
        "effective_until": None, "status": status, "legal_representative_id": None}]})


def received(sandbox: Any, kind: str | None = None) -> list[dict[str, Any]]:
    """The feedback records the sandbox received (of one kind)."""
    records: list[dict[str, Any]] = admin(sandbox, "GET", "/v1/admin/feedback")["records"]
    return [r for r in records if kind is None or r["kind"] == kind]
