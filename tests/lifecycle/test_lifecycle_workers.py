"""The case lifecycle across the worker processes of one data directory (DESIGN rule 14):
each re-screen and each breach is reported once, by the follower, whichever it is."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path
from typing import Any

from _lifecycle_support import Clock, MakeChecker, list_subject, received
from _lifecycle_worker import work

from credit_check import Checker, Outcome, Transaction
from credit_check._models import CST
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE


def run_workers(options: dict[str, Any], tmp_path: Path, n: int = 2, syncs: int = 3,
                moment: dt.datetime | None = None) -> list[str]:
    """``n`` worker processes syncing at once; the callback lines they wrote."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    outs = [tmp_path / f"worker{k}.txt" for k in range(n)]
    procs = [ctx.Process(target=work, args=(options, moment.isoformat() if moment else None,
                                            str(o), syncs, barrier)) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * n
    return [line for o in outs if o.exists() for line in o.read_text().splitlines()]


def test_a_listing_mid_case_is_reported_once_across_two_workers(
        make_checker: MakeChecker, options: dict[str, Any], sandbox: SandboxServer,
        tmp_path: Path) -> None:
    checker = make_checker()
    d = checker.check(SHOWCASE["a_grade_org"],
                      Transaction(scenario="licensing", case_id="XK-2026-010"))
    assert d.outcome is Outcome.GREEN_CHANNEL
    assert checker.sync() and checker.status().watched == 1
    checker.close()
    list_subject(sandbox, "mid-case-10", SHOWCASE["a_grade_org"])
    lines = run_workers(options, tmp_path)
    assert len(lines) == 1 and lines[0].startswith(f"callback {d.decision_id} review ")
    rescreens = received(sandbox, "rescreen")
    assert [r["decision_id"] for r in rescreens] == [d.decision_id]


def test_a_commitment_across_national_day_is_breached_once_across_workers_and_a_restart(
        make_checker: MakeChecker, options: dict[str, Any], sandbox: SandboxServer,
        clock: Clock, tmp_path: Path) -> None:
    clock.set(dt.datetime(2025, 9, 30, 10, 0, tzinfo=CST))  # a Tuesday
    checker = make_checker()
    d = checker.check(SHOWCASE["unknown_org"],
                      Transaction(scenario="licensing", case_id="XK-2025-930"))
    assert d.outcome is Outcome.ALLOW   # accepted under 告知承诺
    c = checker.commit(d.decision_id, items=["设备清单", "场所产权证明"], working_days=5)
    # 1–8 October off; Saturday 11 October worked: 9, 10, 11, 13, 14.
    assert (c.due, c.provisional, c.state) == (dt.date(2025, 10, 14), False, "open")
    clock.set(dt.datetime(2025, 10, 14, 23, 59, tzinfo=CST))
    assert checker.sync()
    assert checker.commitments()[0].state == "open"   # due today: not breached yet
    checker.close()

    day_after = dt.datetime(2025, 10, 15, 9, 0, tzinfo=CST)
    assert run_workers(options, tmp_path, moment=day_after) == []
    restarted = Checker(**(options | {"clock": clock}))
    clock.set(day_after + dt.timedelta(days=1))
    assert restarted.sync()
    (again,) = restarted.commitments(SHOWCASE["unknown_org"])
    assert again.commitment_id == c.commitment_id and again.state == "breached"
    assert again.outstanding == ("设备清单", "场所产权证明")
    assert restarted.status().commitments_breached == 1
    restarted.close()
    breaches = received(sandbox, "commitment_breached")
    assert len(breaches) == 1
    b = breaches[0]
    assert (b["commitment_id"], b["due"], b["decision_id"]) == (
        c.commitment_id, "2025-10-14", d.decision_id)
    (made,) = received(sandbox, "commitment")
    assert made["due"] == "2025-10-14" and made["items"] == ["设备清单", "场所产权证明"]
