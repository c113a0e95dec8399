"""Generated hostile requests through both middlewares: never a 5xx or an exception, and the
app gets the body byte for byte.

Every example is sent through the ASGI and the WSGI middleware (called directly, no HTTP
client in between, so an exception escaping the middleware surfaces here instead of being
turned into a 500 by a test client). The only answers allowed are the app's 2xx, with the
body it received identical to the one sent, or a 4xx ``application/problem+json`` from the
middleware with the app not called. ``bench/fuzz_middleware.py`` runs the same generators
for ten thousand requests and more.
"""

from __future__ import annotations

import contextlib
import io
import json
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import anyio
import pytest
from _middleware_fakes import (
    A_GRADE,
    ABNORMAL,
    BOOM,
    CLEAN,
    DEFAULTER,
    DEGRADED,
    PERSON,
    REMOTE,
    REP_DEFAULTER,
    FakeChecker,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credit_check._middleware import _body
from credit_check._middleware._asgi import CreditCheckASGIMiddleware
from credit_check._middleware._routes import (
    FromForm,
    FromHeader,
    FromJSON,
    FromPath,
    FromQuery,
    Route,
)
from credit_check._middleware._wsgi import CreditCheckWSGIMiddleware

MAX_BODY = 64 * 1024

ROUTES = [
    Route("POST", "/bids/{tender_id}", "bidding", subject=FromJSON("bidder.uscc"),
          case_id=FromPath("tender_id"), item_code=FromJSON("item_code")),
    Route("POST", "/licences", "licensing", subject=FromForm("uscc"),
          legal_representative=FromForm("rep"), case_id=FromForm("case_id")),
    Route("POST", "/market-access", "market_access", subject=FromJSON("uscc"),
          legal_representative=FromJSON("legal_rep.id_number")),
    Route("POST", "/consortium-bids", "bidding", subject=FromJSON("lead.uscc"),
          members=FromJSON("members.*.uscc")),
    Route("POST", "/form-consortium", "bidding", members=FromForm("member")),
    Route("PUT", "/firms/{uscc}", "qualification", subject=FromPath("uscc")),
    Route("POST", "/query", "licensing", subject=FromQuery("uscc")),
    Route("POST", "/header", "licensing", subject=FromHeader("X-Applicant-Id")),
]
PATHS = {
    "json": ["/bids/T-2026-001", "/market-access", "/consortium-bids"],
    "form": ["/licences", "/form-consortium"],
    "other": ["/firms/{id}", "/query", "/header", "/unguarded"],
}
VALID = [CLEAN, DEFAULTER, ABNORMAL, A_GRADE, REMOTE, DEGRADED, BOOM, PERSON, REP_DEFAULTER]

# -- identifiers ----------------------------------------------------------------------------

_LOOKALIKE = str.maketrans({"0": "O", "1": "l", "A": "А", "M": "М", "9": "９", "5": "Ｓ",
                            "3": "З", "X": "Х", "B": "В"})


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _mangle(code: str, how: str, n: int) -> str:
    i = n % len(code)
    return {
        "same": code,
        "fullwidth": _fullwidth(code),
        "lookalike": code.translate(_LOOKALIKE),
        "lower": code.lower(),
        "spaced": " ".join(code[j:j + 4] for j in range(0, len(code), 4)),
        "hyphens": f"{code[:6]}-{code[6:]}\u2014",
        "zero_width": code[:i] + "\u200b" + code[i:],
        "nul": code[:i] + "\x00" + code[i:],
        "truncated": code[:i],
        "doubled": code + code,
        "arabic_digits": "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in code),
        "superscript": code.replace("1", "¹").replace("2", "²"),
        "combining": code + "\u0301",
        "rtl": "\u202e" + code,
        "flip": code[:i] + ("0" if code[i:i + 1] != "0" else "1") + code[i + 1:],
    }[how]


def identifiers() -> st.SearchStrategy[str]:
    mangled = st.builds(_mangle, st.sampled_from(VALID),
                        st.sampled_from(["same", "same", "fullwidth", "lookalike", "lower",
                                         "spaced", "hyphens", "zero_width", "nul", "truncated",
                                         "doubled", "arabic_digits", "superscript",
                                         "combining", "rtl", "flip"]),
                        st.integers(0, 40))
    huge = st.builds(lambda c, n: c * n, st.sampled_from(["9", "A", "中", "\ufeff", " "]),
                     st.integers(100, 100_000))
    return st.one_of(mangled, mangled, st.text(max_size=40), st.just(""), huge)


def field_values() -> st.SearchStrategy[Any]:
    """What a JSON field can hold where an identifier is expected."""
    return st.one_of(identifiers(), identifiers(), st.none(), st.booleans(),
                     st.integers(-(10**30), 10**30), st.floats(allow_nan=False),
                     st.lists(identifiers(), max_size=3),
                     st.dictionaries(st.text(max_size=5), identifiers(), max_size=2))


# -- bodies ---------------------------------------------------------------------------------

json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text(max_size=20))
random_json = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


@st.composite
def shaped_json(draw: st.DrawFn) -> Any:
    """A JSON document shaped like what the routes read, with hostile values in it."""
    value = field_values()
    doc = {
        "bidder": st.one_of(st.fixed_dictionaries({"uscc": value}), value),
        "uscc": value,
        "item_code": st.one_of(st.text(max_size=10), st.text(min_size=129, max_size=300),
                               st.integers()),
        "legal_rep": st.fixed_dictionaries({"id_number": value}),
        "lead": st.fixed_dictionaries({"uscc": value}),
        "members": st.one_of(st.lists(st.fixed_dictionaries({"uscc": value}), max_size=5),
                             value),
        "extra": random_json,
    }
    keys = draw(st.lists(st.sampled_from(sorted(doc)), unique=True))
    return {k: draw(doc[k]) for k in keys}


def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    if kind == "dict":
        return b'{"uscc":' * depth + b"1" + b"}" * depth
    return b'{"bidder":' * depth + json.dumps(CLEAN).encode() + b"}" * depth


def _encode(doc: Any, encoding: str) -> bytes:
    text = json.dumps(doc, ensure_ascii=False)
    return text.encode(encoding, errors="replace")


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["shaped", "shaped", "random", "truncated", "nested",
                                 "duplicate", "encoded", "garbage", "empty", "huge"]))
    if kind == "shaped":
        return json.dumps(draw(shaped_json()), ensure_ascii=draw(st.booleans())).encode()
    if kind == "random":
        return json.dumps(draw(random_json)).encode()
    if kind == "truncated":
        raw = json.dumps(draw(shaped_json()), ensure_ascii=False).encode()
        return raw[:draw(st.integers(0, max(len(raw) - 1, 0)))]
    if kind == "nested":
        return _nested(draw(st.sampled_from([10, 500, 1000, 5000, 20_000])),
                       draw(st.sampled_from(["list", "dict", "bidder"])))
    if kind == "duplicate":
        a, b = draw(identifiers()), draw(identifiers())
        return (f'{{"uscc": {json.dumps(a)}, "uscc": {json.dumps(b)}, '
                f'"bidder": {{"uscc": {json.dumps(a)}}}, "bidder": {{"uscc": {json.dumps(b)}}}, '
                f'"lead": {{"uscc": {json.dumps(a)}, "uscc": {json.dumps(b)}}}}}').encode()
    if kind == "encoded":
        enc = draw(st.sampled_from(["gb18030", "utf-16", "utf-32", "latin-1", "big5",
                                    "utf-8-sig"]))
        return _encode({"uscc": "中国" + draw(identifiers()),
                        "bidder": {"uscc": draw(identifiers())}}, enc)
    if kind == "garbage":
        return draw(st.binary(max_size=300))
    if kind == "empty":
        return draw(st.sampled_from([b"", b" ", b"null", b"{}", b"[]", b'""', b"\xef\xbb\xbf",
                                     b"\xff\xfe", b"\x00" * 8, b"NaN", b"Infinity",
                                     b'{"uscc": NaN}', b"1" * 5000]))
    size = draw(st.sampled_from([60_000, MAX_BODY - 20, MAX_BODY + 1, 3 * MAX_BODY]))
    return json.dumps({"uscc": CLEAN, "pad": "x" * size}).encode()


def _multipart(fields: list[tuple[str, bytes]], boundary: str, files: bool) -> bytes:
    out = []
    for i, (name, value) in enumerate(fields):
        fname = f'; filename="f{i}.bin"' if files and i % 2 else ""
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{fname}'
                   "\r\n\r\n".encode("utf-8", errors="replace") + value + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode("latin-1", errors="replace"))
    return b"".join(out)


form_names = st.sampled_from(["uscc", "rep", "case_id", "member", "member", "x", "",
                              "ｕｓｃｃ", "USCC", "uscc[]", "uscc\x00"])


@st.composite
def form_fields(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    def value() -> st.SearchStrategy[bytes]:
        return st.one_of(identifiers().map(lambda s: s.encode("utf-8", "surrogatepass")),
                         st.binary(max_size=30),
                         identifiers().map(lambda s: s.encode("gb18030", "replace")))
    return draw(st.lists(st.tuples(form_names, value()), max_size=8))


@st.composite
def form_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """A form body and the content type it is sent with."""
    fields = draw(form_fields())
    kind = draw(st.sampled_from(["urlencoded", "urlencoded", "multipart", "multipart",
                                 "multipart_truncated", "multipart_garbage"]))
    if kind == "urlencoded":
        from urllib.parse import quote_from_bytes

        raw = "&".join(f"{quote_from_bytes(k.encode())}={quote_from_bytes(v)}"
                       for k, v in fields).encode()
        if draw(st.booleans()):  # raw (unquoted) bytes, not valid UTF-8 at times
            raw = b"&".join(k.encode() + b"=" + v for k, v in fields)
        return raw, "application/x-www-form-urlencoded"
    boundary = draw(st.sampled_from(["XyZzY123", "----WebKitFormBoundary7MA4YWxkTrZu0gW",
                                     "a", "b" * 70, "with space", "中文", "'quoted'"]))
    body = _multipart(fields, boundary, files=draw(st.booleans()))
    if kind == "multipart_truncated":
        body = body[:draw(st.integers(0, max(len(body) - 1, 0)))]
    elif kind == "multipart_garbage":
        body = draw(st.binary(max_size=200))
    ctype = f'multipart/form-data; boundary="{boundary}"'
    try:
        ctype.encode("latin-1")
    except UnicodeEncodeError:
        ctype = ctype.encode("utf-8").decode("latin-1")  # as a server hands raw bytes on
    return body, ctype


content_types = st.sampled_from([
    None, "", "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
    "application/problem+json", "application/vnd.api+json", "text/json", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=",
    "multipart/form-data; boundary=XyZzY123", "application/octet-stream", "image/png",
    ";;;", "application/json; charset=gb18030", "application/json, text/plain",
    "ａｐｐｌｉｃａｔｉｏｎ/ｊｓｏｎ".encode().decode("latin-1"), "application/\x00json",
])


@dataclass
class Request:
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    chunks: list[bytes] = field(default_factory=list)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """One hostile request to a guarded (or, now and then, an unguarded) route."""
    family = draw(st.sampled_from(["json", "json", "form", "form", "other"]))
    path = draw(st.sampled_from(PATHS[family]))
    if "{id}" in path:
        ident = draw(identifiers()).replace("/", "%2F")
        path = path.replace("{id}", ident[:2000] or "x")
    method = "PUT" if path.startswith("/firms/") else draw(st.sampled_from(["POST"] * 9 + ["GET"]))
    if family == "json":
        body = draw(json_bodies())
        ctype = draw(st.one_of(st.just("application/json"), st.just("application/json"),
                               content_types))
    elif family == "form":
        body, ctype = draw(form_bodies())
        ctype = draw(st.one_of(st.just(ctype), st.just(ctype), content_types))
    else:
        body = draw(st.one_of(json_bodies(), form_bodies().map(lambda b: b[0])))
        ctype = draw(content_types)
    headers: list[tuple[bytes, bytes]] = []
    if ctype is not None:
        headers.append((b"content-type", ctype.encode("latin-1")))
        if draw(st.integers(0, 9)) == 0:  # a duplicated content type
            other = draw(content_types.filter(bool))
            headers.append((b"content-type", str(other).encode("latin-1")))
    if draw(st.integers(0, 3)):
        headers.append((b"content-length", str(len(body)).encode()))
    for _ in range(draw(st.integers(0, 2))):
        headers.append((b"x-applicant-id",
                        draw(identifiers()).encode("utf-8")[:8000]))
    query = b""
    if draw(st.booleans()):
        from urllib.parse import quote

        values = draw(st.lists(identifiers(), max_size=3))
        query = "&".join(f"uscc={quote(v[:3000])}" for v in values).encode()
        if draw(st.integers(0, 4)) == 0:
            query += b"&uscc=%ff%fe&uscc"
    cuts = sorted(set(draw(st.lists(st.integers(0, len(body)), max_size=4))))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    return Request(method, path, query, headers, body, chunks)


# -- driving the middlewares ----------------------------------------------------------------


@dataclass
class Result:
    status: int
    headers: dict[str, str]
    body: bytes
    app_body: bytes | None  # what the app received; None when the app was not called
    errors: int = 0  # checks that failed inside the middleware (the checker raised)


def run_asgi(mw_factory: Any, req: Request) -> Result:
    seen: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        parts = []
        while True:
            message = await receive()
            assert message["type"] == "http.request", message
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        seen.append(b"".join(parts))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = mw_factory(app)
    pending = [{"type": "http.request", "body": c, "more_body": i < len(req.chunks) - 1}
               for i, c in enumerate(req.chunks)] or [{"type": "http.request", "body": b""}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": req.method, "scheme": "http", "path": req.path,
             "raw_path": req.path.encode("utf-8"), "query_string": req.query,
             "root_path": "", "headers": list(req.headers), "client": ("127.0.0.1", 5000),
             "server": ("testserver", 80)}
    anyio.run(mw, scope, receive, send)
    assert sent and sent[0]["type"] == "http.response.start", sent
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in sent[0]["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return Result(sent[0]["status"], headers, body, seen[0] if seen else None, mw.errors)


def run_wsgi(mw_factory: Any, req: Request) -> Result:
    seen: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    mw = mw_factory(app)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method, "SCRIPT_NAME": "",
        "PATH_INFO": req.path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": req.query.decode("latin-1"), "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(req.body),
        "wsgi.errors": io.StringIO(), "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    has_length = False
    for key, value in req.headers:
        name = key.decode("latin-1").upper().replace("-", "_")
        name = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + name
        has_length |= name == "CONTENT_LENGTH"
        text = value.decode("latin-1")
        environ[name] = f"{environ[name]},{text}" if name in environ else text
    if not has_length:
        environ["wsgi.input_terminated"] = True  # a chunked request: the server ends the stream
    status_line: list[str] = []
    headers: list[tuple[str, str]] = []

    def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status_line.append(status)
        headers.extend(hdrs)
        return lambda data: None

    out = mw(environ, start_response)
    try:
        body = b"".join(out)
    finally:
        close = getattr(out, "close", None)
        if close is not None:
            close()
    assert status_line, "no start_response"
    return Result(int(status_line[-1].split()[0]), {k.lower(): v for k, v in headers},
                  body, seen[0] if seen else None, mw.errors)


def check_result(result: Result, req: Request, kind: str, *, unavailable: bool = True,
                 hold: bool = False) -> None:
    """The invariant: the app's 2xx with the body intact, or a 4xx problem from the middleware
    (or, with ``on_error="unavailable"``, the default, the documented 503 problem when the
    checker raised; with ``review="hold"``, the documented 202 "held" answer)."""
    where = f"{kind} {req.method} {req.path[:80]} {req.headers[:3]!r} body[:120]={req.body[:120]!r}"
    limit = 504 if unavailable and result.errors else 500
    assert result.status < limit, f"{result.status} from {where}: {result.body[:300]!r}"
    if result.app_body is not None:
        assert 200 <= result.status < 300, where
        assert result.body == b"ok", where
        assert result.app_body == req.body, f"body not replayed intact: {where}"
        return
    if hold and result.status == 202:
        assert result.headers.get("content-type") == "application/json; charset=utf-8", where
        assert json.loads(result.body)["status"] == "held", where
        return
    assert 400 <= result.status < limit, f"{result.status} without the app: {where}"
    assert result.headers.get("content-type") == "application/problem+json", where
    doc = json.loads(result.body)
    assert doc["status"] == result.status, where
    assert int(result.headers["content-length"]) == len(result.body), where


def asgi_factory(checker: FakeChecker, **options: Any) -> Any:
    return lambda app: CreditCheckASGIMiddleware(app, checker=checker, routes=ROUTES,
                                                 max_body=MAX_BODY, **options)


def wsgi_factory(checker: FakeChecker, **options: Any) -> Any:
    return lambda app: CreditCheckWSGIMiddleware(app, checker=checker, routes=ROUTES,
                                                 max_body=MAX_BODY, **options)


def fuzz_one(req: Request, options: dict[str, Any] | None = None, *,
             kinds: tuple[str, ...] = ("asgi", "wsgi"),
             on_result: Callable[[str, Result], None] | None = None) -> None:
    """Send ``req`` through both middlewares (or those in ``kinds``) and check the invariant
    on each; ``on_result`` sees each result first (the fuzz bench counts them)."""
    options = dict(options or {})
    stdlib_multipart = options.pop("stdlib_multipart", False)
    checker = FakeChecker()
    unavailable = options.get("on_error", "unavailable") == "unavailable" and not options.get(
        "shadow")
    hold = options.get("review") == "hold"
    with contextlib.ExitStack() as stack:
        if stdlib_multipart:  # as without python-multipart installed: the email fallback
            stack.enter_context(mock.patch.object(_body, "_multipart_parser",
                                                  side_effect=ImportError))
        statuses = []
        for kind in kinds:
            runner, factory = (run_asgi, asgi_factory) if kind == "asgi" else (run_wsgi,
                                                                               wsgi_factory)
            calls = len(checker.calls)
            result = runner(factory(checker, **options), req)
            if on_result is not None:
                on_result(kind, result)
            # The only failure is the checker's raising for BOOM: anything else that failed
            # inside the middleware (and was answered by on_error) is a bug of ours.
            raised = any(BOOM in call[1] for call in checker.calls[calls:])
            assert result.errors == raised, f"{kind}: a failure of ours for {req!r:.300}"
            check_result(result, req, kind, unavailable=unavailable, hold=hold)
            statuses.append(result.status)
    # The two middlewares are one policy: the same request gets the same answer from both.
    assert len(set(statuses)) <= 1, f"ASGI and WSGI disagree: {statuses} for {req!r:.300}"


policies = st.sampled_from([{}, {}, {"shadow": True}, {"on_error": "deny"},
                            {"on_error": "proceed"}, {"review": "hold"},
                            {"stdlib_multipart": True}])

# 1500 examples x 2 middlewares = 3000 requests; ~20 s here.
FUZZ = settings(max_examples=1500, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])


@FUZZ
@given(req=requests(), options=policies)
def test_hostile_requests_get_the_app_or_a_problem_never_a_5xx(
        req: Request, options: dict[str, Any]) -> None:
    """Any request: the app's 2xx with the body intact, or a 4xx problem+json, through both."""
    fuzz_one(req, options)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(req=requests(), keep=st.integers(0, 4))
def test_client_gone_mid_body_ends_quietly(req: Request, keep: int) -> None:
    """ASGI: a client that disconnects before the whole body is sent gets no answer, the app
    is not called on a guarded route, and nothing raises."""
    if len(req.chunks) < 2:
        req.chunks = [req.body[:len(req.body) // 2], req.body[len(req.body) // 2:]]
    chunks = req.chunks[:min(keep, len(req.chunks) - 1)]
    pending = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    sent: list[dict[str, Any]] = []
    called: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        called.append(True)
        while (await receive())["type"] == "http.request":
            pass  # an app reading an unguarded body until the disconnect

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    mw = asgi_factory(FakeChecker())(app)
    scope = {"type": "http", "method": req.method, "path": req.path, "query_string": req.query,
             "headers": list(req.headers)}
    anyio.run(mw, scope, receive, send)
    found = mw.routes.match(req.method, req.path)
    if found is not None and found[0].needs_body:
        assert not called
        assert sent == [] or sent[0]["status"] == 413  # over the limit before the client left
    for message in sent:
        if message["type"] == "http.response.start":
            assert message["status"] < 500


@settings(max_examples=300, deadline=None, derandomize=True)
@given(fields=form_fields(), boundary=st.text(string.ascii_letters + string.digits + "'()+_,-./:=? ",
                                              min_size=1, max_size=70),
       cut=st.integers(0, 10_000), garbage=st.binary(max_size=64))
def test_stdlib_multipart_fallback_parses_or_refuses(
        fields: list[tuple[str, bytes]], boundary: str, cut: int, garbage: bytes) -> None:
    """Without python-multipart the email-based parser gives fields or a BodyProblem."""
    body = _multipart(fields, boundary, files=False)
    for data in (body, body[:cut], garbage, body + garbage):
        try:
            parsed = _body._form_multipart_email(data, boundary)
        except _body.BodyProblem as exc:
            assert exc.status == 400
        else:
            assert all(isinstance(v, str) for vs in parsed.values() for v in vs)


@pytest.mark.parametrize("length", ["²", "１２", "٣", "-1", "1e3", " 5 ", "0x10", "9" * 40])
def test_odd_content_length_never_raises(length: str) -> None:
    """A Content-Length that is no plain number is refused or ignored, never a 500."""
    body = json.dumps({"bidder": {"uscc": CLEAN}}).encode()
    req = Request("POST", "/bids/T1", b"", [(b"content-type", b"application/json"),
                                              (b"content-length", _latin1(length))],
                  body, [body])
    checker = FakeChecker()
    for result in (run_asgi(asgi_factory(checker), req), run_wsgi(wsgi_factory(checker), req)):
        assert result.status < 500


def _latin1(text: str) -> bytes:
    try:
        return text.encode("latin-1")  # what a server hands on for a byte such as 0xB2 (²)
    except UnicodeEncodeError:
        return text.encode("utf-8")


@pytest.mark.parametrize("ident", [_fullwidth(CLEAN), f"{CLEAN[:4]}\u3000{CLEAN[4:]}",
                                   f"{CLEAN[:8]}-{CLEAN[8:]}"])
def test_path_identifier_in_non_ascii_is_read_alike_by_both(ident: str) -> None:
    """A full-width (or ideographic-space) id in the path is decoded as UTF-8 by both: WSGI's
    latin-1 PATH_INFO is not handed to the extractor as mojibake."""
    req = Request("PUT", f"/firms/{ident}", b"", [], b"", [b""])
    checker = FakeChecker()
    for result in (run_asgi(asgi_factory(checker), req), run_wsgi(wsgi_factory(checker), req)):
        assert result.status == 200 and result.app_body == b""
    assert [call[1] for call in checker.calls] == [(CLEAN,), (CLEAN,)]


def test_fixed_examples_through_both_middlewares() -> None:
    """Known sharp cases: deep nesting, full-width ids, duplicates, non-UTF-8, huge fields."""
    ctype = (b"content-type", b"application/json")
    cases = [
        _nested(100_000, "list"),
        _nested(3000, "bidder"),
        json.dumps({"bidder": {"uscc": _fullwidth(CLEAN)}}).encode(),
        json.dumps({"bidder": {"uscc": CLEAN.translate(_LOOKALIKE)}}).encode(),
        b'{"bidder": {"uscc": "' + CLEAN.encode() + b'"}, "bidder": {"uscc": "\xff"}}',
        json.dumps({"bidder": {"uscc": CLEAN}}, ensure_ascii=False).encode("utf-16"),
        json.dumps({"bidder": {"uscc": "9" * 50_000}}).encode(),
        b'{"bidder": {"uscc": ' + b"9" * 5000 + b"}}",
        b'{"bidder": {"uscc": "' + CLEAN.encode() + b'"}, "item_code": "' + b"x" * 200 + b'"}',
    ]
    for body in cases:
        fuzz_one(Request("POST", "/bids/T1", b"", [ctype], body, [body]))
