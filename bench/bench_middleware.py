"""Middleware benchmark: the cost the ASGI middleware adds per request, in process and
under a real server.

Every guarded request is a ``POST /licences`` with a JSON body naming a not-listed
applicant (256 distinct, valid USCCs, so no per-subject cache flatters the figures).

The route's scenario is ``procurement`` (``--scenario`` to change): the demo catalogue has
no clean-record criterion there, so the snapshot alone decides a not-listed applicant.

1. In process: the ASGI app called directly with a prebuilt scope/receive/send in a loop,
   with and without the middleware; p50 per request in µs. The guarded route is measured
   with a fake checker (``check_local`` returns a prebuilt ALLOW: the middleware alone)
   and with a real :class:`~credit_check.Checker` on a warm snapshot from the sandbox,
   feedback outbox on (the product's default) and off. An unguarded route too.
2. Under uvicorn: one server process per variant (one worker, 127.0.0.1, pinned to one
   core), all up at once and measured in rounds that put a slice of the app alone between
   every two middleware slices (bare, v1, bare, v2, …; the order rotates each round), each
   variant's ratio taken against the bare slices just before and after it, by a load
   generator in its own process pinned to the other core: raw sockets, keep-alive, one
   request in flight per connection (no pipelining), prebuilt request bytes, responses
   read by Content-Length. Variants: the app alone; with the middleware
   and the fake checker; with the middleware and a real ``Checker.from_env()`` (demo
   sandbox, warm snapshot, the durable record on as configured by default: the journal,
   delivered by the sender process the server starts) and with feedback off
   (``CREDIT_CHECK_FEEDBACK=false``); and an app whose handler does 2 ms of CPU work
   (a loop calibrated at the start of the run to take 2 ms), alone and with the real
   Checker, record on. Reported: requests/s per slice, the median ratio to the app alone
   of the same kind, and the server's CPU time per request — every process of the server,
   the sender process included (DESIGN §10) — from /proc, steadier than requests/s on a
   shared host; and the CPU a guarded request adds with the record on over what it adds
   with feedback off.

The sandbox runs in this process (the load generator's core), playing the platform.

``--baseline DIR`` also runs each middleware variant on another checkout's ``credit_check``
(e.g. ``git worktree add /tmp/base <rev>``), as ``<variant>@base`` in the same rounds, so a
change is measured side by side with what it replaces on the same machine at the same time.

Run: ``.venv/bin/python bench/bench_middleware.py [--rounds 5] [--seconds 2] [--conns 4]
[--baseline DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import random
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

from credit_check import (
    Checker,
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
# procurement: no clean-record (GREEN_CHANNEL) criterion in the demo catalogue, so a
# not-listed applicant is decided from the snapshot alone. In licensing and qualification
# a clean record grants the green channel, so each applicant's clean_since is looked up
# (then cached for not_listed_ttl): --scenario licensing measures that path.
def routes(scenario: str) -> list[Route]:
    """The one guarded route."""
    return [Route("POST", "/licences", scenario, subject=FromJSON("applicant.uscc"),
                  case_id=FromJSON("case_id"))]
VARIANTS = ("bare", "fake", "real", "real-no-outbox", "bare-2ms", "real-2ms")
LABELS = {"bare": "app alone", "fake": "middleware, fake checker",
          "real": "middleware, real Checker, outbox on (default)",
          "real-no-outbox": "middleware, real Checker, outbox off",
          "bare-2ms": "app doing 2 ms of work, alone",
          "real-2ms": "app doing 2 ms of work, real Checker, outbox on"}
# A slice is compared with the app alone of its kind: the hello-world app or the 2 ms one.
BASE = {"bare": "bare", "fake": "bare", "real": "bare", "real-no-outbox": "bare",
        "bare-2ms": "bare-2ms", "real-2ms": "bare-2ms"}


def work(iterations: int) -> int:
    """A fixed, sleep-free CPU loop standing for a handler's own work (a form's checks,
    its SQL): calibrated at the start of a run to take 2 ms in the bare app."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total


def calibrate(target_s: float = 0.002) -> int:
    """Iterations of :func:`work` that take ``target_s`` on this machine now."""
    n = 10_000
    for _ in range(5):
        times = []
        for _ in range(7):
            t0 = time.thread_time()
            work(n)
            times.append(time.thread_time() - t0)
        n = max(1, int(n * target_s / statistics.median(times)))
    return n


def random_uscc(rng: random.Random) -> str:
    """A valid USCC that no demo list holds."""
    body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
    head = "91" + f"{rng.randrange(110000, 660000):06d}" + body + org_code_check_char(body)
    return head + uscc_check_char(head)


def bodies(n: int = 256) -> list[bytes]:
    """``n`` JSON bodies, each naming a different not-listed applicant and case."""
    rng = random.Random(7)
    return [json.dumps({"applicant": {"uscc": random_uscc(rng), "name": "某某科技有限公司"},
                        "case_id": f"XK-2026-{i:04d}", "materials": ["a.pdf", "b.pdf"]},
                       ensure_ascii=False).encode() for i in range(n)]


class PrebuiltChecker:
    """check_local answers at once with one prebuilt ALLOW decision."""

    def __init__(self) -> None:
        self.decision = Decision(
            decision_id="D-bench", outcome=Outcome.ALLOW, subject=Subject.organization(USCC),
            transaction=Transaction(scenario="procurement"),
            decided_at=dt.datetime.now(dt.UTC))

    def check_local(self, subject: Any, transaction: Any) -> Decision:
        return self.decision

    def check(self, subject: Any, transaction: Any) -> Decision:
        return self.decision

    def check_many(self, subjects: Any, transaction: Any) -> Any:
        raise NotImplementedError


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
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


# -- in process ---------------------------------------------------------------------------

def _scope(path: str, body: bytes) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"),
                        (b"accept", b"*/*"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())]}


async def _p50(target: Any, path: str, n: int) -> float:
    cases = [(_scope(path, b), {"type": "http.request", "body": b, "more_body": False})
             for b in bodies()]

    async def send(message: dict[str, Any]) -> None:
        return None

    samples = []
    clock = time.perf_counter_ns
    for i in range(n):
        base, message = cases[i % len(cases)]

        async def receive(message: dict[str, Any] = message) -> dict[str, Any]:
            return message

        scope = dict(base)
        t0 = clock()
        await target(scope, receive, send)
        samples.append(clock() - t0)
    return statistics.median(samples) / 1000


async def in_process(n: int, checkers: dict[str, Any], scenario: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for _ in range(2):  # the first round warms caches (regexes, pydantic, allocator)
        out["bare"] = await _p50(app, "/licences", n)
        for name, checker in checkers.items():
            mw = CreditCheckASGIMiddleware(app, checker=checker, routes=routes(scenario))
            out[name] = await _p50(mw, "/licences", n)
            if name == "fake":
                out["unguarded"] = await _p50(mw, "/other", n)
    return out


# -- the server side (run as a subprocess: --serve VARIANT) -------------------------------

def make_app(variant: str) -> Any:
    """The Starlette app of one variant; a real checker comes from ``Checker.from_env()``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route as StarletteRoute

    iterations = int(os.environ.get("BENCH_WORK_ITERATIONS", "0")) \
        if variant.endswith("-2ms") else 0

    async def licences(request: Request) -> PlainTextResponse:
        await request.body()
        if iterations:
            work(iterations)
        return PlainTextResponse("ok")

    checker: Any = None
    if variant == "fake":
        checker = PrebuiltChecker()
    elif not variant.startswith("bare"):
        checker = Checker.from_env()
        if not checker.wait_ready(30):
            raise SystemExit(f"{variant}: the checker's snapshot did not load")

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if isinstance(checker, Checker):
                checker.close()

    starlette = Starlette(routes=[StarletteRoute("/licences", licences, methods=["POST"])],
                          lifespan=lifespan)
    if checker is not None:
        starlette.add_middleware(CreditCheckASGIMiddleware, checker=checker,
                                 routes=routes(os.environ["BENCH_SCENARIO"]))
    return starlette


def serve(variant: str, port: int, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # before any thread exists, so all inherit it
    import uvicorn

    uvicorn.run(make_app(variant), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="on")


# -- the load generator (run as a subprocess: --load) -------------------------------------

def load_loop(cpu: int | None) -> None:
    """Read ``PORT SECONDS WARMUP CONNS`` lines from stdin, answer each with one JSON line."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    payloads = bodies()
    for line in sys.stdin:
        port, seconds, warmup, conns = line.split()
        result = load(int(port), float(seconds), float(warmup), int(conns), payloads)
        print(json.dumps(result), flush=True)


def load(port: int, seconds: float, warmup: float, conns: int,
         payloads: list[bytes]) -> dict[str, float]:
    """Keep ``conns`` keep-alive connections busy, one request in flight on each: the
    requests completed after the warm-up, the time, errors and this process's CPU time."""
    requests = [b"POST /licences HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: bench\r\n"
                b"Accept: */*\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (port, len(b), b) for b in payloads]
    sel = selectors.DefaultSelector()
    state: dict[socket.socket, list[Any]] = {}
    for i in range(conns):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state[sock] = [bytearray(), i]
        sel.register(sock, selectors.EVENT_READ)
        sock.sendall(requests[i % len(requests)])
    done = errors = 0
    start = time.monotonic()
    begin, end = start + warmup, start + warmup + seconds
    cpu0 = measured_from = None
    now = start
    while now < end:
        for key, _ in sel.select(1.0):
            conn: Any = key.fileobj
            buf, n = state[conn]
            data = conn.recv(65536)
            if not data:
                raise SystemExit("the server closed a connection")
            buf += data
            head = buf.find(b"\r\n\r\n")
            if head < 0:
                continue
            lower = bytes(buf[:head]).lower()
            at = lower.find(b"\r\ncontent-length:")
            if at < 0:
                raise SystemExit(f"response without Content-Length: {bytes(buf[:head])!r}")
            eol = lower.find(b"\r\n", at + 2)
            length = int(lower[at + 17:eol if eol >= 0 else head])
            if len(buf) < head + 4 + length:
                continue
            if not buf.startswith(b"HTTP/1.1 200 "):
                errors += 1
            del buf[:head + 4 + length]
            n += conns
            state[conn][1] = n
            conn.sendall(requests[n % len(requests)])
            if measured_from is not None:
                done += 1
        now = time.monotonic()
        if measured_from is None and now >= begin:
            measured_from, cpu0 = now, time.process_time()
    assert measured_from is not None and cpu0 is not None
    for conn in state:
        sel.unregister(conn)
        conn.close()
    sel.close()
    return {"requests": done, "seconds": now - measured_from, "errors": errors,
            "cpu": time.process_time() - cpu0}


# -- the driver -----------------------------------------------------------------------------

def _cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants (a server's workers and its
    outbox sender process count: DESIGN §10)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, todo = set(), [pid]
    while todo:
        current = todo.pop()
        tree.add(current)
        todo += [p for p, (parent, _) in stats.items() if parent == current and p not in tree]
    ticks = sum(stats[p][1] for p in tree if p in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def _wait_idle(pids: list[int], limit: float = 10.0) -> None:
    """Wait until the servers are idle (the outbox sender done with the last slice)."""
    stop = time.monotonic() + limit
    while time.monotonic() < stop:
        before = sum(_cpu_seconds(p) for p in pids)
        time.sleep(0.2)
        if sum(_cpu_seconds(p) for p in pids) - before < 0.01:
            return


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cores() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def _start(variant: str, port: int, cpu: int | None, env: dict[str, str],
           tmp: Path, baseline: str | None = None) -> subprocess.Popen[bytes]:
    venv = dict(env, CREDIT_CHECK_DATA_DIR=str(tmp / variant))
    variant, at, _ = variant.partition("@")
    if at:  # the other checkout's package first on the path (this file's folder is bench/)
        assert baseline is not None
        venv["PYTHONPATH"] = os.pathsep.join(filter(None, [baseline, env.get("PYTHONPATH")]))
    if variant == "real-no-outbox":
        venv["CREDIT_CHECK_FEEDBACK"] = "false"
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", variant,
                             "--port", str(port),
                             *(["--cpu", str(cpu)] if cpu is not None else [])], env=venv)


def _ready(variant: str, proc: subprocess.Popen[bytes], port: int) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"the {variant} server exited")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/licences", body=bodies()[0],
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            conn.close()
        except OSError:
            time.sleep(0.1)
            continue
        print(f"  {variant:20s} pid {proc.pid}: {resp.status}, "
              f"X-Credit-Check: {resp.getheader('X-Credit-Check')}")
        return
    raise SystemExit(f"the {variant} server did not answer")


def under_uvicorn(args: argparse.Namespace, env: dict[str, str],
                  tmp: Path) -> dict[str, list[dict[str, float]]]:
    """Each round measures the app alone between every two middleware slices (bare, v1,
    bare, v2, …, bare), so each slice is compared with its neighbours in time."""
    server_cpu, load_cpu = _cores()
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})  # this process hosts the sandbox
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    loader = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--load",
         *(["--cpu", str(load_cpu)] if load_cpu is not None else [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert loader.stdin is not None and loader.stdout is not None
    to_loader, from_loader = loader.stdin, loader.stdout
    try:
        for variant in args.variants:
            ports[variant] = _free_port()
            procs[variant] = _start(variant, ports[variant], server_cpu, env, tmp,
                                    args.baseline)
        for variant in args.variants:
            _ready(variant, procs[variant], ports[variant])
        pids = [p.pid for p in procs.values()]

        def measure(variant: str) -> dict[str, float]:
            _wait_idle(pids)
            cpu0 = _cpu_seconds(procs[variant].pid)
            print(ports[variant], args.seconds, args.warmup, args.conns, file=to_loader,
                  flush=True)
            result = json.loads(from_loader.readline())
            if result["errors"]:
                raise SystemExit(f"{variant}: {result['errors']} answers were not 200")
            # The server's CPU over the whole slice (warm-up included), per request.
            rps = result["requests"] / result["seconds"]
            server = (_cpu_seconds(procs[variant].pid) - cpu0) / (
                rps * (result["seconds"] + args.warmup)) * 1e6
            return {"rps": rps, "server_us": server,
                    "client_us": result["cpu"] / result["requests"] * 1e6}

        rounds: dict[str, list[dict[str, float]]] = {v: [] for v in args.variants}
        guarded = [v for v in args.variants if not v.startswith("bare")]
        for r in range(args.rounds):
            last = {}
            for base in sorted({BASE[v.partition("@")[0]] for v in args.variants}):
                last[base] = measure(base)
                _show(r, base, last[base], None)
                rounds[base].append(last[base])
            for variant in guarded:
                base = BASE[variant.partition("@")[0]]
                before = last[base]
                got = measure(variant)
                after = measure(base)
                got["ratio"] = got["rps"] / ((before["rps"] + after["rps"]) / 2)
                got["added_us"] = got["server_us"] - (before["server_us"]
                                                      + after["server_us"]) / 2
                rounds[variant].append(got)
                rounds[base].append(after)
                _show(r, variant, got, got["ratio"])
                _show(r, base, after, None)
                last[base] = after
            guarded = guarded[1:] + guarded[:1]
        return rounds
    finally:
        to_loader.close()
        for proc in procs.values():
            proc.terminate()
        children: list[subprocess.Popen[Any]] = [*procs.values(), loader]
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()


def _show(r: int, variant: str, m: dict[str, float], ratio: float | None) -> None:
    line = (f"  round {r + 1} {variant:20s} {m['rps']:8.0f} req/s  server "
            f"{m['server_us']:6.1f} µs CPU/req  load generator {m['client_us']:5.1f} µs CPU/req")
    if ratio is not None:
        line += f"  {ratio * 100:5.1f} % of its neighbours"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="calls per in-process figure")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per slice")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--conns", type=int, default=4, help="keep-alive connections")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--scenario", default="procurement",
                        help="the guarded route's scenario (licensing needs clean_since)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also run the middleware variants on DIR's credit_check")
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.cpu)
        return
    if args.load:
        load_loop(args.cpu)
        return
    for variant in list(args.variants):
        if BASE[variant] not in args.variants:
            args.variants.insert(0, BASE[variant])
    if args.baseline:
        if not (Path(args.baseline) / "credit_check" / "__init__.py").is_file():
            parser.error(f"--baseline {args.baseline}: no credit_check package there")
        args.baseline = os.path.abspath(args.baseline)
        args.variants += [f"{v}@base" for v in args.variants if v != "bare"]

    from credit_check._server import SandboxServer

    with tempfile.TemporaryDirectory(prefix="bench-middleware-") as name:
        tmp = Path(name)
        with SandboxServer(tmp / "sandbox.db", demo=True, port=0) as sandbox:
            env = dict(os.environ, CREDIT_CHECK_BASE_URL=sandbox.base_url,
                       CREDIT_CHECK_API_KEY=sandbox.demo_key,
                       CREDIT_CHECK_DEPARTMENT="示范市行政审批局",
                       CREDIT_CHECK_SERVICE_PUBLIC_KEY=sandbox.public_key,
                       CREDIT_CHECK_ENCRYPTION_KEY=base64.b64encode(os.urandom(32)).decode(),
                       BENCH_SCENARIO=args.scenario,
                       BENCH_WORK_ITERATIONS=str(calibrate()))
            for key in ("CREDIT_CHECK_FEEDBACK", "CREDIT_CHECK_FALLBACK"):
                env.pop(key, None)
            if not args.skip_in_process:
                _report_in_process(args.n, tmp, env, args.scenario)
            cores = _cores()
            print(f"uvicorn, 1 worker, 127.0.0.1, server on CPU {cores[0]}, load generator "
                  f"and sandbox on CPU {cores[1]}; {args.conns} keep-alive connections, one "
                  f"request in flight on each; {args.rounds} rounds, slices of "
                  f"{args.seconds:g} s (+{args.warmup:g} s warm-up), the app alone between "
                  f"every two middleware slices:")
            rounds = under_uvicorn(args, env, tmp)
    _report_rounds(rounds)


def _report_in_process(n: int, tmp: Path, env: dict[str, str], scenario: str) -> None:
    def checker(name: str, **options: Any) -> Checker:
        return Checker(base_url=env["CREDIT_CHECK_BASE_URL"],
                       api_key=env["CREDIT_CHECK_API_KEY"],
                       department=env["CREDIT_CHECK_DEPARTMENT"],
                       service_public_key=env["CREDIT_CHECK_SERVICE_PUBLIC_KEY"],
                       encryption_key=env["CREDIT_CHECK_ENCRYPTION_KEY"],
                       data_dir=tmp / name, **options)

    on = checker("in-process-on")  # the feedback outbox on: the default
    off = checker("in-process-off", feedback=False)
    with on, off:
        assert on.wait_ready(30) and off.wait_ready(30), "checker not ready"
        p50 = asyncio.run(in_process(n, {"fake": PrebuiltChecker(), "real": on,
                                         "real-no-outbox": off}, scenario))
    print(f"in process, p50 per request ({n} calls, 256 applicants, scenario {scenario}):")
    print(f"  app alone                 {p50['bare']:8.2f} µs")
    print(f"  unguarded route           {p50['unguarded']:8.2f} µs  → added "
          f"{p50['unguarded'] - p50['bare']:.2f} µs (target ≤ 2)")
    for name in ("fake", "real", "real-no-outbox"):
        added = p50[name] - p50["bare"]
        target = " (target ≤ 50)" if name == "fake" else ""
        print(f"  guarded, {name:16s} {p50[name]:8.2f} µs  → added {added:.2f} µs{target}")


def _report_rounds(rounds: dict[str, list[dict[str, float]]]) -> None:
    print("summary (medians over rounds; a ratio compares a slice with the app alone's slices "
          "just before and after it):")
    added: dict[str, float] = {}
    for variant, rs in rounds.items():
        rps = statistics.median(r["rps"] for r in rs)
        cpu = statistics.median(r["server_us"] for r in rs)
        client = statistics.median(r["client_us"] for r in rs)
        name, at, _ = variant.partition("@")
        label = LABELS[name] + (" [baseline]" if at else "")
        line = (f"  {label:57s} {rps:8.0f} req/s  {cpu:7.1f} µs server CPU/req "
                f"(load generator {client:4.1f})")
        if not name.startswith("bare"):
            ratio = statistics.median(r["ratio"] for r in rs)
            added[variant] = statistics.median(r["added_us"] for r in rs)
            target = " (target ≥ 95 %)" if name.endswith("-2ms") else ""
            line += (f"  ratio {ratio * 100:5.1f} %{target}, "
                     f"+{added[variant]:.1f} µs CPU/req")
        print(line)
    if "real" in added and "real-no-outbox" in added:
        print(f"  added CPU, durable record on / feedback off: "
              f"{added['real'] / added['real-no-outbox']:.2f}x (target ≤ 1.5x)")


if __name__ == "__main__":
    main()
