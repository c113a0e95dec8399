"""The guarded path's shortcuts give the same answers as the general code they bypass:
lazily decoded ASGI headers, object-only JSON paths and the per-route transaction."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _middleware_fakes import CLEAN, FakeChecker
from hypothesis import given
from hypothesis import strategies as st

from credit_check._middleware._body import ASGIHeaders, RequestData
from credit_check._middleware._guard import Guard, Plan
from credit_check._middleware._routes import FromJSON, Route

_NAMES = st.sampled_from([b"content-type", b"Content-Type", b"x-applicant-id", b"X-APPLICANT-ID",
                          b"accept", b"x-\xc4", b"x-\xe4"])
_VALUES = st.binary(max_size=12)


def _dict_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    # What the middleware built before: every header decoded, repeated ones joined.
    headers: dict[str, str] = {}
    for key, value in raw:
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return headers


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=6),
       st.sampled_from(["content-type", "x-applicant-id", "accept", "Content-Type", "x-ä",
                        "x-Ä", "missing"]))
def test_asgi_headers_read_like_a_dict_of_every_header(raw: list[tuple[bytes, bytes]],
                                                       name: str) -> None:
    """A header looked up lazily has the value the fully decoded dict gives it."""
    expected = _dict_headers(raw)
    lazy = ASGIHeaders(raw)
    assert lazy.get(name) == expected.get(name)
    assert (name in lazy) == (name in expected)
    assert dict(lazy) == expected
    assert lazy.get(name, "-") == expected.get(name, "-")  # after decoding everything too


def test_asgi_headers_join_repeated_values_and_raise_keyerror() -> None:
    lazy = ASGIHeaders([(b"x-id", b"a"), (b"X-Id", b"b")])
    assert lazy["x-id"] == "a, b"
    assert len(lazy) == 1
    with pytest.raises(KeyError):
        lazy["x-other"]


def _generic(ex: FromJSON, request: RequestData) -> list[str]:
    # The general walk (lists fanned out), which an object-only path skips.
    object.__setattr__(ex, "_keys_only", False)
    try:
        return ex.extract(request)
    finally:
        object.__setattr__(ex, "_keys_only", True)


_TREE = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=4),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["a", "b", "uscc"]), inner, max_size=3))


@given(_TREE, st.sampled_from(["a", "a.b", "a.uscc", "uscc", "b.a.uscc"]))
def test_object_only_json_path_extracts_like_the_general_walk(tree: Any, path: str) -> None:
    ex = FromJSON(path)
    request = RequestData(headers={"content-type": "application/json"}, query_string="",
                          path_params={}, body=json.dumps(tree).encode())

    def run(fn: Any) -> tuple[str, Any]:
        try:
            return "ok", fn()
        except ValueError as exc:
            return type(exc).__name__, str(exc)

    assert run(lambda: ex.extract(request)) == run(lambda: _generic(ex, request))


def _plan(guard: Guard, route: Route, body: dict[str, Any]) -> Plan:
    request = RequestData(headers={"content-type": "application/json"}, query_string="",
                          path_params={}, body=json.dumps(body).encode())
    plan = guard.plan(route, request)
    assert isinstance(plan, Plan)
    return plan


def test_route_transaction_is_reused_only_without_request_fields() -> None:
    guard = Guard(FakeChecker(), department="审批局")
    route = Route("POST", "/a", "licensing", subject=FromJSON("uscc"),
                  case_id=FromJSON("case_id"))
    first = _plan(guard, route, {"uscc": CLEAN}).transaction
    assert _plan(guard, route, {"uscc": CLEAN}).transaction is first
    assert first.department == "审批局" and first.case_id is None
    with_case = _plan(guard, route, {"uscc": CLEAN, "case_id": "XK-1"}).transaction
    assert with_case.case_id == "XK-1"
    guard.department = "另一局"  # a changed department is not answered from the cache
    assert _plan(guard, route, {"uscc": CLEAN}).transaction.department == "另一局"
    other = Route("POST", "/a", "bidding", subject=FromJSON("uscc"))
    assert _plan(guard, other, {"uscc": CLEAN}).transaction.scenario.value == "bidding"
