"""Fuzzing the sandbox application (hypothesis): arbitrary JSON, bytes and mutated but
correctly signed feedback records and entries must get a 2xx or a 4xx problem+json, never a
500, and never leave the prefix set out of step with the entries."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _sandbox_app_support import PROBLEM, Sandbox, TestClient, entry, feedback_records, org_id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credit_check._crypto import feedback_key, id_prefix, record_hmac
from credit_check._server import create_app, open_sandbox
from credit_check._server._entries import all_contributions
from credit_check._server._sqlite import SQLiteStore
from credit_check._server._store import COUNTING

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                  max_size=4),
    max_leaves=12)

BODY_CALLS = [
    ("POST", "/v1/subjects:batch", False),
    ("POST", "/v1/feedback", False),
    ("PUT", "/v1/admin/catalog", True),
    ("POST", "/v1/admin/entries", True),
    ("POST", "/v1/admin/entries/demo-00001/status", True),
    ("POST", "/v1/admin/keys", True),
]


@contextmanager
def sandbox(tmp: Path) -> Iterator[Sandbox]:
    store, signer, admin_key, demo_key = open_sandbox(tmp / "s.db", demo=True)
    with TestClient(create_app(store, signer, admin_key), raise_server_exceptions=False) as c:
        yield Sandbox(c, store, signer, admin_key, demo_key)
    store.close()


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with sandbox(tmp_path_factory.mktemp("fuzz")) as s:
        yield s


def check(resp: Any) -> None:
    assert resp.status_code < 500, resp.text[:500]
    if resp.status_code >= 400:
        assert resp.headers["content-type"].startswith(PROBLEM)


@SETTINGS
@given(call=st.sampled_from(BODY_CALLS), body=json_values | st.binary(max_size=64),
       wrap=st.sampled_from([None, "ids", "records", "entries", "status", "department"]))
def test_any_body_is_never_a_500(sb: Sandbox, call: tuple[str, str, bool], body: Any,
                                 wrap: str | None) -> None:
    method, path, admin = call
    key = sb.admin_key if admin else sb.demo_key
    raw = body if isinstance(body, bytes) else json.dumps({wrap: body} if wrap else body).encode()
    ctype = "text/csv" if path.endswith("entries") and isinstance(body, bytes) else (
        "application/json")
    check(sb.client.request(method, path, content=raw, headers={
        "Authorization": f"Bearer {key}", "Content-Type": ctype}))


FIELDS = ["record_id", "kind", "decision_id", "department", "transaction", "subject",
          "matches", "measures", "outcome", "degraded", "catalog_version", "data_version",
          "created_at", "result", "note", "operator", "previous_outcome"]


@SETTINGS
@given(field=st.sampled_from(FIELDS), value=json_values, drop=st.booleans())
def test_mutated_signed_feedback_is_never_a_500(sb: Sandbox, field: str, value: Any,
                                                drop: bool) -> None:
    (record,) = feedback_records(sb.demo_key, 1)
    if drop:
        record.pop(field)
    else:
        record[field] = value
    record["hmac"] = record_hmac(feedback_key(sb.demo_key), record)
    resp = sb.post("/v1/feedback", json={"records": [record, *feedback_records(sb.demo_key, 1)]})
    check(resp)
    assert resp.status_code == 200
    body = resp.json()
    assert len(body["accepted"]) + len(body["rejected"]) == 2
    check(sb.admin("GET", "/v1/admin/feedback", params={"since": "2099-01-01"}))
    check(sb.admin("GET", "/v1/admin/stats"))


ENTRY_FIELDS = ["entry_id", "list_code", "list_kind", "subject_kind", "name",
                "issuing_department", "basis_document", "reason", "listed_on",
                "effective_from", "effective_until", "status", "legal_representative_id"]


@SETTINGS
@given(field=st.sampled_from(ENTRY_FIELDS), value=json_values | st.sampled_from(
    ["2025-01-01", "9999-12-31T23:00:00-12:00", "active", "repaired", "red", "person",
     "tax.a_grade", org_id(5)]), n=st.integers(0, 10**6))
def test_mutated_entries_never_500_and_keep_the_prefix_set(sb: Sandbox, field: str, value: Any,
                                                           n: int) -> None:
    e = entry(f"fz-{n % 50}", org_id(n), legal_representative_id=None)
    e[field] = value
    check(sb.admin("POST", "/v1/admin/entries", json={"entries": [e]}))
    check(sb.admin("POST", f"/v1/admin/entries/fz-{n % 50}/status",
                   json={"status": "repaired" if n % 3 else "active"}))
    check(sb.get(f"/v1/subjects/{org_id(n)}"))
    # The live set equals the set rebuilt from the entries.
    store = sb.store
    assert isinstance(store, SQLiteStore)
    store.refresh()
    expected = Counter(all_contributions(store._conn(), store._reach))
    assert store.index.counts() == expected
    listed = store._conn().execute(
        "SELECT COUNT(*) FROM entries WHERE subject_key = ? AND status IN (?, ?)",
        (org_id(n), *COUNTING)).fetchone()[0]
    assert (id_prefix(org_id(n)) in expected) == bool(listed)


@SETTINGS
@given(text=st.text(max_size=40), header=st.text(alphabet=st.characters(
    min_codepoint=0x20, max_codepoint=0xFF), max_size=40))
def test_any_path_query_or_header_is_never_a_500(sb: Sandbox, text: str, header: str) -> None:
    check(sb.get(f"/v1/subjects/{quote(text, safe='')}"))
    check(sb.get("/v1/snapshot", params={"since": text}))
    check(sb.admin("GET", "/v1/admin/feedback", params={"since": text}))
    check(sb.admin("POST", f"/v1/admin/entries/{quote(text, safe='')}/status",
                   json={"status": "active"}))
    check(sb.admin("POST", f"/v1/admin/keys/{quote(text, safe='')}/revoke"))
    raw = header.encode("latin-1")
    check(sb.client.get("/v1/catalog", headers={"If-None-Match": raw,
                                                "Authorization": f"Bearer {sb.demo_key}"}))
    check(sb.client.get("/v1/keys", headers={"Authorization": raw}))
    check(sb.client.get("/v1/keys", headers={"Authorization": b"Bearer " + raw}))
    check(sb.client.get("/v1/admin/stats", headers={"Authorization": b"Bearer " + raw}))
