"""Helpers of the case-lifecycle tests: the real sandbox over loopback, a settable clock,
admin calls, and list entries to add mid-case (a uniquely named module)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from _live_sandbox import Clock, MakeChecker, admin

from credit_check._models import CST

__all__ = ["DEPARTMENT", "ENCRYPTION_KEY", "Clock", "MakeChecker", "admin", "list_subject",
           "received"]

ENCRYPTION_KEY = base64.b64encode(b"lifecycle-test-key-32-bytes-long").decode()
DEPARTMENT = "示范市行政审批局"


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
