"""The monitoring figures of the sandbox's Store (GET /v1/admin/stats), on both engines:
breakdowns by outcome, list, measure, region and degraded decisions, a period and a
department, and the coverage of the cases handled, with the unchecked cases listed — while
no case id or person is stored in clear."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from credit_check._crypto import Signer
from credit_check._models import Catalog
from credit_check._server._demo import demo_catalog
from credit_check._server._feed import record_facts
from credit_check._server._personal import PersonalData
from credit_check._server._postgres import PostgresStore
from credit_check._server._sqlite import SQLiteStore
from credit_check._server._store import Intake, StatsQuery, Store

ENGINES = ["sqlite", "postgres"]
PERSON = "350100199001011237"


@pytest.fixture(params=ENGINES)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    signer = Signer.generate()
    personal = PersonalData(os.urandom(32))
    opened: list[Store] = []
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""

    def make() -> Store:
        store: Store
        if request.param == "postgres":
            store = PostgresStore(url, signer, personal, pool_size=3)
        else:
            store = SQLiteStore(tmp_path / "s.db", signer, personal)
        store.put_catalog(Catalog.load(demo_catalog()))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    return open_store()


def record(rid: str, kind: str = "decision", *, department: str = "财政局",
           scenario: str = "procurement", outcome: str = "allow", day: str = "2026-11-03",
           case: str | None = None, decision: str | None = None, region: str | None = None,
           degraded: bool = False, lists: tuple[str, ...] = (),
           measures: tuple[str, ...] = ()) -> Intake:
    """A stored record as intake makes it: its facts read from its JSON by record_facts."""
    data: dict[str, Any] = {
        "record_id": rid, "kind": kind, "decision_id": decision or f"d-{rid}",
        "department": department,
        "transaction": {"scenario": scenario, "case_id": case, "region": region},
        "subject": {"kind": "person", "id": PERSON},
        "matches": [{"list_code": c, "entry_id": f"e-{c}"} for c in lists],
        "measures": [{"code": c} for c in measures],
        "outcome": outcome, "degraded": degraded, "created_at": f"{day}T10:00:00+08:00"}
    return Intake(rid, department, kind, scenario, outcome, int(bool(lists)), len(measures),
                  day, json.dumps(data, ensure_ascii=False).encode(), *record_facts(data))


def rows_of(stats: dict[str, Any], name: str, key: str, *fields: str) -> dict[Any, Any]:
    return {r[key]: tuple(r[f] for f in fields) for r in stats[name]}


def test_checks_break_down_by_outcome_list_measure_region_and_degraded(store: Store) -> None:
    store.add_feedback([
        record("a", outcome="deny", region="350100", lists=("court.judgment_defaulter",),
               measures=("P-001", "P-002")),
        record("b", outcome="deny", region="350100",
               lists=("court.judgment_defaulter", "tax.major_violation"), measures=("P-001",)),
        record("c", outcome="review", region="350200", degraded=True),
        record("d", outcome="allow", region=None),
        record("e", outcome="green_channel", region="350200", lists=("tax.a_grade",),
               measures=("G-001",)),
        record("p", "post_check", outcome="deny", lists=("court.judgment_defaulter",),
               measures=("P-001",)),
    ])
    stats = store.stats()
    assert stats["total"] == {"checks": 5, "hits": 3, "measures": 4, "degraded": 1}
    assert rows_of(stats, "by_outcome", "outcome", "checks", "hits", "degraded") == {
        "deny": (2, 2, 0), "review": (1, 0, 1), "allow": (1, 0, 0), "green_channel": (1, 1, 0)}
    assert rows_of(stats, "by_region", "region", "checks", "degraded") == {
        "350100": (2, 0), "350200": (2, 1), None: (1, 0)}
    assert [r["region"] for r in stats["by_region"]] == ["350100", "350200", None]
    # The post-check's list and measure are not checks; one check on two lists counts once
    # for each list.
    assert rows_of(stats, "by_list", "list_code", "checks") == {
        "court.judgment_defaulter": (2,), "tax.major_violation": (1,), "tax.a_grade": (1,)}
    assert rows_of(stats, "by_measure", "measure", "checks") == {
        "P-001": (2,), "P-002": (1,), "G-001": (1,)}
    assert stats["degraded"] == {"checks": 1, "share": 0.2, "post_checks": 1,
                                 "post_check_hits": 1}
    assert rows_of(stats, "by_kind", "kind", "records") == {"decision": (5,), "post_check": (1,)}


def test_a_period_and_a_department_select_the_records_counted(store: Store) -> None:
    store.add_feedback([
        record("oct", day="2026-10-31"), record("nov1", day="2026-11-01"),
        record("nov30", day="2026-11-30", department="住建局"), record("dec", day="2026-12-01"),
    ])
    november = store.stats(StatsQuery("2026-11-01", "2026-12-01"))
    assert november["total"]["checks"] == 2
    assert [r["day"] for r in november["by_day"]] == ["2026-11-01", "2026-11-30"]
    assert november["period"] == {"since": "2026-11-01", "until": "2026-12-01",
                                  "department": None}
    one = store.stats(StatsQuery("2026-11-01", "2026-12-01", "住建局"))
    assert one["total"]["checks"] == 1 and rows_of(one, "by_department", "department",
                                                   "checks") == {"住建局": (1,)}
    assert store.stats(StatsQuery(until="2026-11-01"))["total"]["checks"] == 1
    assert store.stats()["total"]["checks"] == 4
    # Global figures stay global.
    assert november["records"] == 4


def test_coverage_counts_cases_handled_that_have_a_check(open_store: Callable[[], Store]
                                                         ) -> None:
    a, b = open_store(), open_store()  # two service processes on one database
    a.add_feedback([
        # CG-1: opened, checked, outcome reported: one case, checked.
        record("o1", "case_opened", case="CG-1"), record("d1", case="CG-1"),
        record("r1", "outcome", case="CG-1", outcome="deny"),
        # CG-2: checked in October, its outcome in November: checked.
        record("d2", case="CG-2", day="2026-10-20"), record("r2", "outcome", case="CG-2"),
        # CG-3: opened and decided without any check reaching the service.
        record("o3", "case_opened", case="CG-3", scenario="licensing"),
        record("r3", "outcome", case="CG-3", scenario="licensing"),
    ])
    b.add_feedback([
        # The same case number in another department is another case, unchecked there.
        record("o4", "case_opened", case="CG-1", department="住建局"),
        # An outcome of a check made without a case id is matched by its decision.
        record("d5", decision="dec-5"), record("r5", "outcome", decision="dec-5"),
        record("r6", "outcome", decision="dec-6"),
        # A check alone is no case handled.
        record("d7", case="CG-7"),
    ])
    stats = b.stats(StatsQuery("2026-11-01", "2026-12-01"))
    coverage = stats["coverage"]
    assert (coverage["cases_handled"], coverage["cases_checked"]) == (6, 3)
    assert coverage["ratio"] == 0.5 and coverage["unchecked_total"] == 3
    unchecked = {(u["department"], u["case_id"], u["decision_id"]): u
                 for u in coverage["unchecked"]}
    assert set(unchecked) == {("财政局", "CG-3", None), ("住建局", "CG-1", None),
                              ("财政局", None, "dec-6")}
    first = unchecked[("财政局", "CG-3", None)]
    assert (first["kind"], first["scenario"]) == ("case_opened", "licensing")
    assert first["reported_at"].startswith("2026-11-03")
    assert {r["department"]: (r["cases_handled"], r["cases_checked"], r["ratio"])
            for r in coverage["by_department"]} == {"财政局": (5, 3, 0.6), "住建局": (1, 0, 0.0)}
    one = b.stats(StatsQuery(department="住建局"))["coverage"]
    assert (one["cases_handled"], one["cases_checked"], one["ratio"]) == (1, 0, 0.0)
    # Nothing handled: no ratio rather than a made-up one.
    empty = a.stats(StatsQuery("2027-01-01", "2027-02-01"))["coverage"]
    assert (empty["cases_handled"], empty["ratio"], empty["unchecked"]) == (0, None, [])


def test_the_unchecked_list_is_bounded_and_oldest_first(store: Store) -> None:
    store.add_feedback([record(f"o{i:03d}", "case_opened", case=f"C-{i:03d}")
                        for i in range(130)])
    coverage = store.stats()["coverage"]
    assert coverage["unchecked_total"] == 130 and len(coverage["unchecked"]) == 100
    assert [u["case_id"] for u in coverage["unchecked"][:3]] == ["C-000", "C-001", "C-002"]


def test_case_ids_and_persons_are_not_stored_in_clear(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SQLiteStore(db, Signer.generate(), PersonalData(os.urandom(32)))
    try:
        store.add_feedback([record("o1", "case_opened", case="CASE-ZX-4471"),
                            record("d1", case="CASE-ZX-4471", region="350100")])
        assert store.stats()["coverage"]["cases_checked"] == 1
    finally:
        store.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("s.db"))
    assert b"CASE-ZX-4471" not in data and PERSON.encode() not in data
    assert b"350100" in data  # the region is a clear column


def test_records_page_in_storage_order_with_a_cursor(open_store: Callable[[], Store]) -> None:
    a, b = open_store(), open_store()
    a.add_feedback([record(f"r{i}") for i in range(5)])
    b.add_feedback([record(f"r{i}") for i in range(5, 7)])
    first = b.feedback_page(None, 0, 3)
    assert [r["record_id"] for r in first.records] == ["r0", "r1", "r2"] and first.more
    second = a.feedback_page(None, first.after, 3)
    assert [r["record_id"] for r in second.records] == ["r3", "r4", "r5"] and second.more
    last = a.feedback_page(None, second.after, 3)
    assert [r["record_id"] for r in last.records] == ["r6"] and not last.more
    # Kept, the last cursor finds what arrives later, and only that.
    assert a.feedback_page(None, last.after, 3).records == []
    b.add_feedback([record("r7")])
    later = a.feedback_page(None, last.after, 3)
    assert [r["record_id"] for r in later.records] == ["r7"] and not later.more
    assert a.feedback_page("2999-01-01", 0, 3).records == []
