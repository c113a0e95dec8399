"""Helpers for the sandbox application tests (a uniquely named module: test files import it
whichever conftest pytest loaded first)."""

from __future__ import annotations

import datetime as dt
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package; httpx still works.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

__all__ = ["PROBLEM", "Sandbox", "TestClient", "assert_problem", "entry", "feedback_records",
           "make_decision", "org_id", "person_records"]

from credit_check._crypto import Signer, feedback_key, record_hmac
from credit_check._feedback import decision_record
from credit_check._ids import org_code_check_char, uscc_check_char
from credit_check._models import (
    CST,
    AppliedMeasure,
    Decision,
    ListEntry,
    Outcome,
    Subject,
    Transaction,
)
from credit_check._server._store import Store

PROBLEM = "application/problem+json"


@dataclass
class Sandbox:
    client: TestClient
    store: Store
    signer: Signer
    admin_key: str
    demo_key: str

    def get(self, path: str, key: str | None = None, **kw: Any) -> Any:
        return self.client.get(path, headers=auth(key or self.demo_key, kw), **kw)

    def post(self, path: str, key: str | None = None, **kw: Any) -> Any:
        return self.client.post(path, headers=auth(key or self.demo_key, kw), **kw)

    def admin(self, method: str, path: str, **kw: Any) -> Any:
        return self.client.request(method, path, headers=auth(self.admin_key, kw), **kw)

    def new_key(self, department: str = "测试局", allow_persons: bool = False) -> dict[str, Any]:
        resp = self.admin("POST", "/v1/admin/keys",
                          json={"department": department, "allow_persons": allow_persons})
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        return body


def auth(key: str, kw: dict[str, Any]) -> dict[str, str]:
    headers = dict(kw.pop("headers", None) or {})
    headers.setdefault("Authorization", f"Bearer {key}")
    return headers


def assert_problem(resp: Any, status: int, *needles: str) -> dict[str, Any]:
    """``resp`` is a problem+json answer with ``status`` whose text names every needle."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers["content-type"]
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["title"] and isinstance(body["detail"], str)
    for needle in needles:
        assert needle in resp.text, (needle, body)
    return body


def org_id(i: int) -> str:
    """A valid, fictional USCC numbered ``i``."""
    org = f"{i:08d}"
    body = "91" + "110108" + org + org_code_check_char(org)
    return body + uscc_check_char(body)


def entry(entry_id: str, subject_id: str, *, list_code: str = "court.judgment_defaulter",
          list_kind: str = "black", status: str = "active", **extra: Any) -> dict[str, Any]:
    """A valid ListEntry of an organisation, as JSON."""
    data: dict[str, Any] = {
        "entry_id": entry_id, "list_code": list_code, "list_kind": list_kind,
        "subject_id": subject_id, "subject_kind": "organization", "name": "测试有限公司（虚构）",
        "issuing_department": "某市中级人民法院", "basis_document": "（2025）示执1号",
        "effective_from": "2025-01-01", "status": status,
    }
    data.update(extra)
    return data


def make_decision(i: int = 0, subject_id: str | None = None, scenario: str = "procurement",
                  department: str = "财政局") -> Decision:
    sid = subject_id or org_id(900 + i)
    matches = [ListEntry.model_validate(entry(f"fb:{i}", sid))] if i % 2 == 0 else []
    measures = [AppliedMeasure(code="P-001", name="限制参加政府采购", effect="deny",
                               legal_basis="示例依据", implementing_department="财政局",
                               target="subject", list_code=m.list_code, entry_id=m.entry_id)
                for m in matches]
    return Decision(
        decision_id=uuid.uuid4().hex,
        outcome=Outcome.DENY if matches else Outcome.ALLOW,
        subject=Subject.organization(sid, "示例科技有限公司"),
        transaction=Transaction(scenario=scenario, case_id=f"CASE-{i}", department=department,
                                operator="clerk-7"),
        matches=matches,
        measures=measures,
        catalog_version="2026.1",
        data_version="2",
        decided_at=dt.datetime(2026, 3, 1, 9, 30, tzinfo=CST) + dt.timedelta(days=i % 3),
    )


def feedback_records(api_key: str, n: int, *, department: str = "财政局",
                     scenario: str = "procurement") -> list[dict[str, Any]]:
    """``n`` signed decision records, as sent on the wire."""
    out = []
    for i in range(n):
        record = decision_record(make_decision(i, scenario=scenario, department=department),
                                 department=department).model_dump(mode="json")
        record["hmac"] = record_hmac(feedback_key(api_key), record)
        out.append(record)
    return out


def person_records(api_key: str, people: list[tuple[str, str]], *,
                   department: str = "财政局") -> list[dict[str, Any]]:
    """Signed decision records of natural persons ``(id number, name)``, as sent."""
    out = []
    for i, (id_number, name) in enumerate(people):
        decision = make_decision(i, scenario="licensing", department=department)
        decision = decision.model_copy(update={"subject": Subject.person(id_number, name),
                                               "matches": [], "measures": [],
                                               "outcome": Outcome.ALLOW})
        record = decision_record(decision, department=department).model_dump(mode="json")
        record["hmac"] = record_hmac(feedback_key(api_key), record)
        out.append(record)
    return out
