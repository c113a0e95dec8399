"""Middleware benchmark: the cost the ASGI middleware adds per request.

1. In process: the ASGI app called directly with a prebuilt scope/receive/send in a loop,
   with and without the middleware; p50 per request in µs. Guarded route with a JSON body
   and a not-listed applicant, decided by ``check_local`` (a fake returning a prebuilt
   ALLOW decision); an unguarded route.
2. Over loopback: uvicorn (one worker, 127.0.0.1) serving a Starlette app with and
   without the middleware; requests/s from a threaded ``http.client`` load generator.

Run: ``.venv/bin/python bench/bench_middleware.py [--seconds 3] [--threads 8]``
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from credit_check import (
    CreditCheckASGIMiddleware,
    Decision,
    FromJSON,
    Outcome,
    Route,
    Subject,
    Transaction,
)
from credit_check._ids import org_code_check_char, uscc_check_char

ORG = "MA0000001"[:8]
_BODY17 = "91350100" + ORG + org_code_check_char(ORG)
USCC = _BODY17 + uscc_check_char(_BODY17)
BODY = json.dumps({"applicant": {"uscc": USCC, "name": "某某科技有限公司"},
                   "case_id": "XK-2026-0001", "materials": ["a.pdf", "b.pdf"]}).encode()
ROUTES = [Route("POST", "/licences", "licensing", subject=FromJSON("applicant.uscc"),
                case_id=FromJSON("case_id"))]


class PrebuiltChecker:
    """check_local answers at once with one prebuilt ALLOW decision."""

    def __init__(self) -> None:
        self.decision = Decision(
            decision_id="D-bench", outcome=Outcome.ALLOW, subject=Subject.organization(USCC),
            transaction=Transaction(scenario="licensing"),
            decided_at=dt.datetime.now(dt.UTC))

    def check_local(self, subject: Any, transaction: Any) -> Decision:
        return self.decision

    def check(self, subject: Any, transaction: Any) -> Decision:
        return self.decision

    def check_many(self, subjects: Any, transaction: Any) -> Any:
        raise NotImplementedError


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal app: reads the body, answers 200."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _scope(path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(BODY)).encode())]}


async def _p50(target: Any, path: str, n: int) -> float:
    base = _scope(path)
    message = {"type": "http.request", "body": BODY, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: dict[str, Any]) -> None:
        return None

    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        scope = dict(base)
        t0 = clock()
        await target(scope, receive, send)
        samples.append(clock() - t0)
    return statistics.median(samples) / 1000


async def in_process(n: int) -> dict[str, float]:
    mw = CreditCheckASGIMiddleware(app, checker=PrebuiltChecker(), routes=ROUTES)
    out = {}
    for _ in range(2):  # the first round warms caches (regexes, pydantic, allocator)
        out["bare"] = await _p50(app, "/licences", n)
        out["guarded"] = await _p50(mw, "/licences", n)
        out["unguarded"] = await _p50(mw, "/other", n)
    return out


SERVER = """
import sys
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route as R
sys.path.insert(0, {bench!r})
from bench_middleware import ROUTES, PrebuiltChecker
from credit_check import CreditCheckASGIMiddleware

async def licences(request):
    await request.body()
    return PlainTextResponse("ok")

app = Starlette(routes=[R("/licences", licences, methods=["POST"])])
if {guarded!r}:
    app.add_middleware(CreditCheckASGIMiddleware, checker=PrebuiltChecker(), routes=ROUTES)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(port: int, seconds: float, threads: int) -> float:
    count = [0] * threads
    stop = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"}

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            conn.request("POST", "/licences", body=BODY, headers=headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
            count[i] += 1
        conn.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(count) / (time.monotonic() - t0)


def over_loopback(seconds: float, threads: int, tmp: str) -> dict[str, float]:
    bench_dir = os.path.dirname(os.path.abspath(__file__))
    out = {}
    for guarded in (False, True):
        module = os.path.join(tmp, f"bench_app_{int(guarded)}.py")
        with open(module, "w") as f:
            f.write(SERVER.format(bench=bench_dir, guarded=guarded))
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", f"bench_app_{int(guarded)}:app",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--log-level", "warning", "--no-access-log"], cwd=tmp)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            _load(port, 0.5, threads)  # warm up
            out["guarded" if guarded else "bare"] = _load(port, seconds, threads)
        finally:
            proc.terminate()
            proc.wait(10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    p50 = asyncio.run(in_process(args.n))
    print(f"in process, p50 per request ({args.n} calls):")
    print(f"  app alone            {p50['bare']:7.2f} µs")
    print(f"  guarded (JSON, ALLOW) {p50['guarded']:6.2f} µs  → added "
          f"{p50['guarded'] - p50['bare']:.2f} µs (target ≤ 50)")
    print(f"  unguarded route      {p50['unguarded']:7.2f} µs  → added "
          f"{p50['unguarded'] - p50['bare']:.2f} µs (target ≤ 2)")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rps = over_loopback(args.seconds, args.threads, tmp)
    ratio = rps["guarded"] / rps["bare"] * 100
    print(f"uvicorn, 1 worker, {args.threads} client threads, {args.seconds:.0f} s each:")
    print(f"  without middleware {rps['bare']:8.0f} req/s")
    print(f"  with middleware    {rps['guarded']:8.0f} req/s  ({ratio:.1f} %, target ≥ 85 %)")


if __name__ == "__main__":
    main()
