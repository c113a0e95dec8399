"""The guarded path's shortcuts give the same answers as the general code they bypass:
lazily decoded ASGI headers, the UTF-8 JSON shortcut, object-only JSON paths and the
per-route transaction."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _middleware_fakes import CLEAN, FakeChecker
from hypothesis import given
from hypothesis import strategies as st

from credit_check._middleware._body import ASGIHeaders, RequestData, _parse_json
from credit_check._middleware._guard import Guard, Plan, Verdict
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


def _loads(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", json.loads(body)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


def _shortcut(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", _parse_json(body)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


_JSONISH = st.one_of(
    st.binary(max_size=40),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=3), inner, max_size=3)).map(
        lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8")),
    st.sampled_from([b"{", b"[", b"{\x00", b"[\x00\x00\x00", b'{"a": "\xed\xa0\x80"}',
                     b'{"a": 1} x', b' {"a": 1}', b"\xef\xbb\xbf{}", b'{"a":"\xff"}',
                     b'{"a": 1} \r\n\t ', b"[1] \x0c", b"[1]\xc2\xa0", b"{} {}", b"[]]",
                     b"{} \n x", b"[", b"[]\x00"]),
)


@given(_JSONISH)
def test_json_shortcut_parses_and_fails_like_json_loads(body: bytes) -> None:
    """Same value, or the same error class and message, as ``json.loads``."""
    assert _shortcut(body) == _loads(body)


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


_REQUEST_FIELD = st.one_of(
    st.none(), st.integers(-10, 10**20), st.booleans(),
    st.text(max_size=4),
    st.text(st.characters(codec="utf-8") | st.sampled_from(["\ud800", "\udfff"]),
            min_size=120, max_size=135),
    st.sampled_from(["x" * 128, "x" * 129, "é" * 128, "é" * 129, " XK-1 ", "a\ud800"]))


@given(_REQUEST_FIELD, _REQUEST_FIELD)
def test_request_fields_on_the_route_transaction_give_what_validation_gives(
        case_id: Any, item_code: Any) -> None:
    """A case id and item code added to the route's cached transaction make the very
    Transaction (or the very 400) that validating the whole transaction makes."""
    route = Route("POST", "/a", "licensing", subject=FromJSON("uscc"),
                  case_id=FromJSON("case_id"), item_code=FromJSON("item"))
    body = json.dumps({"uscc": CLEAN, "case_id": case_id, "item": item_code}).encode()

    def plan(guard: Guard) -> Plan | Verdict:
        return guard.plan(route, RequestData(headers={"content-type": "application/json"},
                                             query_string="", path_params={}, body=body))

    warm = Guard(FakeChecker(), department="审批局")
    _plan(warm, route, {"uscc": CLEAN, "case_id": "XK-0"})  # the route's transaction cached
    cold = Guard(FakeChecker(), department="审批局")
    got, expected = plan(warm), plan(cold)
    if isinstance(expected, Verdict):
        assert got == expected
        return
    assert isinstance(got, Plan)
    made, validated = got.transaction, expected.transaction
    assert made == validated
    assert list(made.__dict__.items()) == list(validated.__dict__.items())
    assert made.model_fields_set == validated.model_fields_set
    assert repr(made) == repr(validated)
