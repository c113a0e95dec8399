"""Checker.check() cost side by side in one run: the outbox off, the default durable check
(the decision record in the journal before check() returns), and the naive integration
(one HTTP lookup per check); their ratios, p99 at a steady rate with delivery running, and
the delivery rate to the sandbox with both sides' CPU.

The sandbox runs in its own process (the other core), playing the platform.

1. Tight loop, not listed, warm snapshot: outbox off and durable, interleaved in rounds
   (``--rounds`` × ``--n`` checks each); p50 is the median of the round medians. Beside
   them, the floor of any durable encrypted record on this machine: the outbox-off check
   followed by its fields marshalled, AES-GCM and one ``write(2)``, without our code.
2. Steady rate (DESIGN §10): ``--rate`` checks/s (default 1,000) for ``--steady`` checks
   (default 10,000) with the checker's sender delivering meanwhile; p50, p99 and p99/p50,
   for both configurations.
3. Naive: one ``GET /v1/subjects/{id}`` and the same rulebook per check.
4. Delivery: ``--deliver`` records written by checks into a data dir whose checker runs no
   sender, then one sender delivers them all (``Sender.flush``): records/s, and the CPU
   seconds per 1,000 records spent by the sender (this process) and by the sandbox.
5. check_many(1,000; 2 % listed), and a listed subject on a warm cache.
6. Receipts (DESIGN §9.4): the not-listed check with its local receipt (the default: a
   reference to the snapshot's signed header, the header in the durable record) and
   without (the header taken off the snapshot state), interleaved rounds, outbox off and
   durable; and check_many(100, online=True) — a signed answer per subject — against
   check_many(100) of the same subjects.
7. Metrics (``credit_check.enable_metrics``): the not-listed check, outbox off, with the
   counters on and off, interleaved rounds.

Targets (issue 13): durable p50 ≤ 2× outbox-off p50; ≥ 100× faster than naive; durable
p99 ≤ 10× its p50 at the steady rate; delivery ≥ 20,000 records/s.

    .venv/bin/python bench/bench_checker.py [--n 20000] [--rounds 5] [--deliver 100000]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import marshal
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic_core import to_jsonable_python

from credit_check import Checker, Subject, Transaction
from credit_check._ids import org_code_check_char, uscc_check_char
from credit_check._models import CST, Catalog, SubjectLookup
from credit_check._rules import decide

DEPARTMENT = "示范市行政审批局"


def random_uscc(rng: random.Random) -> str:
    body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
    org = body + org_code_check_char(body)
    head = "91" + f"{rng.randrange(110000, 660000):06d}" + org
    return head + uscc_check_char(head)


def pct(samples_ns: list[int], q: float) -> float:
    s = sorted(samples_ns)
    return s[min(len(s) - 1, int(len(s) * q))] / 1000


def timed(fn: Callable[[], object], n: int) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def paced(fn: Callable[[], object], n: int, rate: float) -> list[int]:
    """``n`` calls at ``rate`` per second (each at its scheduled moment), their latencies."""
    out = []
    clock = time.perf_counter_ns
    step = 1e9 / rate
    start = clock()
    for i in range(n):
        due = start + i * step
        while (now := clock()) < due:
            if due - now > 200_000:
                time.sleep((due - now - 100_000) / 1e9)
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sandbox:
    """``credit-check serve --demo`` in its own process."""

    def __init__(self, tmp: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin_key = "bench-admin-key"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "credit_check._cli", "serve", "--demo", "--db",
             str(tmp / "sandbox.db"), "--port", str(self.port), "--admin-key",
             self.admin_key, "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.demo_key, self.public_key = info["demo_api_key"], info["public_key"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.base_url + "/v1/keys", timeout=1,
                             headers={"Authorization": f"Bearer {self.demo_key}"})
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the sandbox did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="checks per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1000.0, help="steady checks/s")
    parser.add_argument("--steady", type=int, default=10000, help="checks at the steady rate")
    parser.add_argument("--deliver", type=int, default=100_000, help="records to deliver")
    args = parser.parse_args()
    rng = random.Random(11)
    tmp = Path(tempfile.mkdtemp(prefix="bench-checker-"))
    sandbox = Sandbox(tmp)
    admin = {"Authorization": f"Bearer {sandbox.admin_key}"}
    listed = [random_uscc(rng) for _ in range(20)]
    entries = [{
        "entry_id": f"BENCH-{i}", "list_code": "tax.major_violation", "list_kind": "black",
        "subject_id": code, "subject_kind": "organization", "name": f"测试企业{i}",
        "issuing_department": "某市税务局", "basis_document": f"税稽〔2026〕{i}号",
        "reason": "bench", "effective_from": "2026-01-01", "status": "active",
    } for i, code in enumerate(listed)]
    requests.post(f"{sandbox.base_url}/v1/admin/entries", json={"entries": entries},
                  headers=admin, timeout=30).raise_for_status()
    tx = Transaction(scenario="procurement", case_id="BENCH-1")
    clean = [Subject.organization(random_uscc(rng)) for _ in range(4000)]
    lines: list[tuple[str, str]] = []

    def checker(name: str, **options: object) -> Checker:
        made = Checker(base_url=sandbox.base_url, api_key=sandbox.demo_key,
                       department=DEPARTMENT, data_dir=tmp / name,
                       service_public_key=sandbox.public_key, **options)  # type: ignore[arg-type]
        assert made.wait_ready(15), "checker not ready"
        return made

    try:
        off, on = checker("off", feedback=False), checker("on")
        for c in (off, on):
            for s in clean[:500]:
                c.check(s, tx)
        # 1. Tight loop, interleaved rounds; and the floor of a durable record on this
        # machine: the outbox-off check followed by what any such record needs — its
        # fields marshalled, AES-GCM, one write(2) — with none of the outbox's own code.
        fd = os.open(tmp / "floor.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        aead = AESGCM(os.urandom(32))

        def floor(it: Any) -> None:
            d = off.check(next(it), tx)
            plain = marshal.dumps((d.decision_id, DEPARTMENT, str(d.transaction.scenario),
                                   d.transaction.case_id, str(d.subject.kind), d.subject.id,
                                   str(d.outcome), d.catalog_version, d.data_version,
                                   to_jsonable_python(d.decided_at)))
            nonce = os.urandom(12)
            os.write(fd, nonce + aead.encrypt(nonce, plain, None))

        medians: dict[str, list[float]] = {"off": [], "on": [], "floor": []}
        for _ in range(args.rounds):
            for name, c in (("off", off), ("on", on)):
                it = iter(clean * (args.n // len(clean) + 1))
                medians[name].append(pct(timed(lambda c=c, it=it: c.check(next(it), tx),
                                               args.n), 0.5))
            it = iter(clean * (args.n // len(clean) + 1))
            medians["floor"].append(pct(timed(lambda it=it: floor(it), args.n), 0.5))
        os.close(fd)
        p50_off, p50_on = statistics.median(medians["off"]), statistics.median(medians["on"])
        p50_floor = statistics.median(medians["floor"])
        lines.append(("check() not listed, outbox off, p50 (tight loop)", f"{p50_off:.1f} µs"))
        lines.append(("check() not listed, durable (default), p50 (tight loop)",
                      f"{p50_on:.1f} µs"))
        lines.append(("  floor: outbox off + marshal + AES-GCM + write(2), no outbox code",
                      f"{p50_floor:.1f} µs"))
        # 6. Receipts: the same loop with the snapshot's receipt header and without.
        def header(c: Checker, keep: bool) -> None:
            snap = c._syncer.snapshot
            assert snap is not None
            if keep and snap.header is None:
                c._syncer.snapshot = dataclasses.replace(snap, header=saved[id(c)])
            elif not keep and snap.header is not None:
                saved[id(c)] = snap.header
                c._syncer.snapshot = dataclasses.replace(snap, header=None)

        saved: dict[int, object] = {}
        with_r: dict[str, list[float]] = {"off": [], "on": []}
        without_r: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(args.rounds):
            for name, c in (("off", off), ("on", on)):
                for keep, into in ((True, with_r), (False, without_r)):
                    header(c, keep)
                    it = iter(clean * (args.n // len(clean) + 1))
                    into[name].append(pct(timed(lambda c=c, it=it: c.check(next(it), tx),
                                                args.n), 0.5))
        for c in (off, on):
            header(c, True)
        for name in ("off", "on"):
            a, b = statistics.median(with_r[name]), statistics.median(without_r[name])
            label = "outbox off" if name == "off" else "durable"
            lines.append((f"check() not listed, {label}: with receipt / without, p50",
                          f"{a:.1f} / {b:.1f} µs  ({a / b:.2f}x)"))
        # 7. Metrics on and off (outbox off, so the counter is what is measured).
        from prometheus_client import CollectorRegistry

        from credit_check import enable_metrics

        counted = checker("metrics", feedback=False)
        enable_metrics(counted, CollectorRegistry())
        for s in clean[:500]:
            counted.check(s, tx)
        m_on: list[float] = []
        m_off: list[float] = []
        for _ in range(args.rounds):
            for c, into in ((counted, m_on), (off, m_off)):
                it = iter(clean * (args.n // len(clean) + 1))
                into.append(pct(timed(lambda c=c, it=it: c.check(next(it), tx), args.n), 0.5))
        a, b = statistics.median(m_on), statistics.median(m_off)
        lines.append(("check() not listed, outbox off: metrics on / off, p50",
                      f"{a:.1f} / {b:.1f} µs  ({a / b:.2f}x)"))
        counted.close()
        batch = clean[:100]
        signed_t, plain_t = [], []
        for _ in range(5):
            t0 = time.perf_counter_ns()
            on.check_many(batch, tx, online=True)
            signed_t.append(time.perf_counter_ns() - t0)
            t0 = time.perf_counter_ns()
            on.check_many(batch, tx)
            plain_t.append(time.perf_counter_ns() - t0)
        a, b = statistics.median(signed_t) / 1e6, statistics.median(plain_t) / 1e6
        lines.append(("check_many(100), online=True (signed answers) / local, median",
                      f"{a:.1f} / {b:.1f} ms"))
        # The default sender (a process of the durable checker's) delivers the tight loops'
        # backlog: the delivery rate of the product as configured, against the sandbox.
        backlog = on.status().outbox_pending or 0
        t0 = time.perf_counter()
        while (on.status().outbox_pending or 0) and time.perf_counter() - t0 < 600:
            time.sleep(0.2)
        drained = time.perf_counter() - t0
        lines.append(("default sender process: backlog of the loops above delivered",
                      f"{backlog:,} records in {drained:.1f} s = "
                      f"{backlog / max(drained, 1e-9):,.0f} records/s"))
        # 2. Steady rate with delivery running.
        steady: dict[str, tuple[float, float]] = {}
        for name, c in (("off", off), ("on", on)):
            it = iter(clean * (args.steady // len(clean) + 1))
            samples = paced(lambda c=c, it=it: c.check(next(it), tx), args.steady, args.rate)
            steady[name] = (pct(samples, 0.5), pct(samples, 0.99))
        for name in ("off", "on"):
            p50, p99 = steady[name]
            label = "outbox off" if name == "off" else "durable, sender delivering"
            lines.append((f"check() at {args.rate:,.0f}/s, {label}: p50 / p99",
                          f"{p50:.1f} / {p99:.1f} µs  (p99/p50 {p99 / p50:.1f}x)"))
        delivered_on = on.status().outbox_pending
        lines.append(("records still pending after the steady run (delivered meanwhile)",
                      str(delivered_on)))
        # 5. Listed subject, warm cache; check_many.
        from credit_check._server._demo import SHOWCASE

        hit = Subject.organization(SHOWCASE["court_defaulter_org"])
        on.check(hit, tx)
        lines.append(("check() listed, warm cache, durable, p50",
                      f"{pct(timed(lambda: on.check(hit, tx), args.n), 0.5):.1f} µs"))
        times = []
        for _ in range(5):
            fresh = [Subject.organization(random_uscc(rng)) for _ in range(980)]
            fresh += [Subject.organization(code) for code in listed]
            t0 = time.perf_counter_ns()
            group = on.check_many(fresh, tx)
            times.append(time.perf_counter_ns() - t0)
            assert sum(d.outcome.value == "deny" for d in group) == 20
        lines.append(("check_many(1,000; 2 % listed), durable, median",
                      f"{statistics.median(times) / 1e6:.1f} ms"))
        off.close()
        on.close()
        # 3. Naive.
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {sandbox.demo_key}"
        catalog = Catalog.load(session.get(f"{sandbox.base_url}/v1/catalog", timeout=5)
                               .json()["catalog"])
        codes = [random_uscc(rng) for _ in range(500)]

        def naive() -> None:
            code = codes[rng.randrange(len(codes))]
            body = session.get(f"{sandbox.base_url}/v1/subjects/{code}", timeout=5).json()
            lookup = SubjectLookup.model_validate(body)
            decide(subject=Subject.organization(code), transaction=tx, catalog=catalog,
                   now=dt.datetime.now(CST), decision_id="x", entries=lookup.entries,
                   clean_since=lookup.clean_since, data_version=lookup.data_version)

        p50_naive = pct(timed(naive, 2000), 0.5)
        lines.append(("naive: one HTTP lookup per check, p50", f"{p50_naive:.1f} µs"))
        # 4. Delivery.
        writer = checker("deliver", sender=False)
        for i in range(args.deliver):
            writer.check(clean[i % len(clean)], tx)
        assert writer._outbox is not None
        box = writer._outbox
        sender = box.attach_sender(writer._transport, batch_size=500)
        me0, sb0 = time.process_time(), cpu_seconds(sandbox.proc.pid)
        t0 = time.perf_counter()
        done = sender.flush(600)
        elapsed = time.perf_counter() - t0
        me1, sb1 = time.process_time(), cpu_seconds(sandbox.proc.pid)
        sender.close(0.0)
        writer.close(0.0)
        rate = args.deliver / elapsed
        lines.append((f"delivery of {args.deliver:,} records to the sandbox",
                      f"{rate:,.0f} records/s ({elapsed:.1f} s, all delivered: {done})"))
        lines.append(("  CPU per 1,000 records: sender (import, sign, send) / sandbox intake",
                      f"{(me1 - me0) / args.deliver * 1000 * 1000:.0f} ms / "
                      f"{(sb1 - sb0) / args.deliver * 1000 * 1000:.0f} ms"))
    finally:
        sandbox.stop()
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    p99_on = steady["on"][1] / steady["on"][0]
    print(f"\ndurable / outbox-off p50: {p50_on / p50_off:.2f}x (target ≤ 2x; the floor of a "
          f"durable encrypted record here: {p50_floor / p50_off:.2f}x)")
    print(f"naive / durable p50:      {p50_naive / p50_on:,.0f}x (target ≥ 100x)")
    print(f"durable p99 / p50 at {args.rate:,.0f}/s: {p99_on:.1f}x (target ≤ 10x)")
    print(f"delivery:                 {rate:,.0f} records/s (target ≥ 20,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
