"""The sandbox's Store interface, tested through the interface only so that the same tests
run on every engine (SQLite, and PostgreSQL on a throwaway server of the test session).
Several store objects on one database stand for several service processes."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _sandbox_app_support import entry, org_id

from credit_check._crypto import Signer, id_prefix
from credit_check._exceptions import ConfigurationError
from credit_check._models import Catalog, EntryStatus, ListEntry
from credit_check._server._demo import demo_catalog, make_id_number
from credit_check._server._personal import PersonalData
from credit_check._server._postgres import PostgresStore
from credit_check._server._sqlite import SQLiteStore
from credit_check._server._store import (
    SCHEMA_VERSION,
    Intake,
    SerialConflict,
    SnapshotGone,
    Store,
    StoreError,
    entry_row,
)

ENGINES = ["sqlite", "postgres"]
OpenStore = Callable[..., Store]


@pytest.fixture(params=ENGINES)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    signer = Signer.generate()
    personal = PersonalData(os.urandom(32))
    opened: list[Store] = []
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""

    def make(key: Signer | None = None) -> Store:
        store: Store
        if request.param == "postgres":
            store = PostgresStore(url, key or signer, personal, pool_size=3)
        else:
            store = SQLiteStore(tmp_path / "s.db", key or signer, personal)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    s = open_store()
    s.put_catalog(Catalog.load(demo_catalog()))
    return s


def rows(*entries: dict[str, object]) -> list[tuple[str, str, str, str | None, str, str, str]]:
    return [entry_row(ListEntry.model_validate(e)) for e in entries]


def person(seed: int) -> str:
    return make_id_number(random.Random(seed))


def intake(record_id: str, day: str = "2026-03-01") -> Intake:
    return Intake(record_id, "财政局", "decision", "procurement", "allow", 0, 0, day,
                  b'{"record_id":"' + record_id.encode() + b'"}')


def test_schema_version_is_recorded(store: Store) -> None:
    assert store.schema_version == SCHEMA_VERSION
    assert store.meta("schema_version") == str(SCHEMA_VERSION)


def test_a_one_time_flag_is_claimed_once(open_store: OpenStore) -> None:
    a, b = open_store(), open_store()
    assert a.claim("demo_loaded") is True
    assert b.claim("demo_loaded") is False and a.claim("demo_loaded") is False


def test_catalogue_serials_only_increase(open_store: OpenStore) -> None:
    store = open_store()
    assert store.catalog() is None
    first, v1 = store.put_catalog(Catalog.load(demo_catalog()))
    assert first.serial == 1 and store.refresh().catalog_serial == 1
    same, v_same = store.put_catalog(Catalog.load(demo_catalog()), if_none=True)
    assert (same.serial, v_same) == (1, v1)  # there was one: nothing done
    with pytest.raises(SerialConflict, match="only increases"):
        store.put_catalog(Catalog.load(demo_catalog()), serial=1)
    assert store.put_catalog(Catalog.load(demo_catalog()), serial=5)[0].serial == 5
    assert store.put_catalog(Catalog.load(demo_catalog()))[0].serial == 6
    other = open_store()  # another process
    assert other.catalog() is not None and other.catalog().serial == 6  # type: ignore[union-attr]


def test_upsert_lookup_and_snapshot(store: Store) -> None:
    org, rep = org_id(10), person(10)
    result = store.upsert(rows(entry("s-1", org, legal_representative_id=rep),
                               entry("s-2", org_id(11), status="repaired")))
    assert (result["created"], result["updated"]) == (2, 0)
    assert result["version"] == store.refresh().version
    answer = store.lookup(org, "organization", persons=True, history=False)
    assert [e["entry_id"] for e in answer["entries"]] == ["s-1"]
    assert answer["subject"]["legal_representative"] == {"id": rep, "name": None}
    assert answer["data_version"] == str(result["version"])
    hidden = store.lookup(org, "organization", persons=False, history=False)
    assert hidden["subject"]["legal_representative"] is None and rep not in str(hidden)
    assert store.lookup(org_id(11), "organization", persons=True, history=False)[
        "entries"] == []
    assert [e["status"] for e in store.lookup(org_id(11), "organization", persons=True,
                                              history=True)["entries"]] == ["repaired"]
    state = store.snapshot()
    listed = {int.from_bytes(state.packed[i : i + 4], "big")
              for i in range(0, len(state.packed), 4)}
    assert {id_prefix(org), id_prefix(rep)} <= listed and id_prefix(org_id(11)) not in listed
    with pytest.raises(StoreError, match=r"no\.such"):
        store.upsert(rows(entry("s-3", org_id(12), list_code="no.such")))


def test_status_change_and_delta(store: Store) -> None:
    org = org_id(20)
    v0 = store.upsert(rows(entry("d-1", org)))["version"]
    changed = store.set_status("d-1", EntryStatus.OBJECTION_PENDING, None)
    assert changed.status is EntryStatus.OBJECTION_PENDING
    store.set_status("d-1", EntryStatus.REMOVED, None, "objection_upheld_wrong")
    delta = store.delta(v0)
    assert (delta.since, delta.state.version) == (v0, v0 + 2)
    assert delta.removed == {id_prefix(org)} and delta.added == set()
    assert delta.changed == set() and delta.lifted == {"d-1"}
    assert store.delta(v0 + 1).changed == set()
    step = store.delta(v0)
    assert step.state.checksum == store.snapshot().checksum
    with pytest.raises(KeyError):
        store.set_status("nope", EntryStatus.ACTIVE, None)
    with pytest.raises(SnapshotGone):
        store.delta(v0 + 3)
    store.put_catalog(Catalog.load(demo_catalog()))  # rebuilds the set
    with pytest.raises(SnapshotGone, match="full snapshot"):
        store.delta(v0)


def test_a_change_through_one_process_reaches_the_others(open_store: OpenStore) -> None:
    a = open_store()
    a.put_catalog(Catalog.load(demo_catalog()))
    b = open_store()
    rep = person(30)
    a.upsert(rows(entry("m-1", org_id(30), legal_representative_id=rep)))
    b.upsert(rows(entry("m-2", org_id(31))))  # b catches up before it writes
    a.set_status("m-1", EntryStatus.REPAIRED, None)
    head_a, head_b = a.refresh(), b.refresh()
    assert head_a == head_b
    assert a.snapshot() == b.snapshot()
    assert b.delta(head_b.version - 3).removed == set()
    assert b.delta(head_b.version - 2).added == {id_prefix(org_id(31))}
    assert a.lookup(org_id(31), "organization", persons=True, history=False)["entries"]
    # Each process's reference counts equal a rebuild from the database.
    fresh = open_store()
    for store in (a, b):
        assert counts(store) == counts(fresh)
    assert a.raise_epoch() == 2 and b.refresh().epoch == 2


def test_feedback_is_deduplicated_by_the_database(open_store: OpenStore) -> None:
    a, b = open_store(), open_store()
    assert a.add_feedback([intake("r1"), intake("r2"), intake("r1")]) == (["r1", "r2"], ["r1"])
    assert b.add_feedback([intake("r2"), intake("r3")]) == (["r3"], ["r2"])
    assert [r["record_id"] for r in b.feedback(None, 10)] == ["r1", "r2", "r3"]
    stats = a.stats()
    assert stats["duplicates"] == 2 and stats["records"] == 3
    assert stats["by_day"] == [{"day": "2026-03-01", "checks": 3, "hits": 0, "measures": 0,
                                "degraded": 0}]
    assert a.add_feedback([]) == ([], [])


def test_keys_are_found_by_hash_and_revoked(store: Store) -> None:
    made = store.create_key("税务局", allow_persons=True)
    found = store.find_key(made["api_key"])
    assert found is not None and (found.department, found.allow_persons) == ("税务局", True)
    assert store.find_key("cc_wrong") is None
    assert store.revoke_key(made["key_id"]) is True
    assert store.find_key(made["api_key"]) is None and store.revoke_key("k_none") is False


def test_subjects_change_the_set_through_their_representative(store: Store) -> None:
    rep, org = person(40), org_id(40)
    store.upsert(rows(entry("sr-1", rep, subject_kind="person")))
    assert id_prefix(org) not in _listed(store)
    store.upsert([], [(org, "organization", "甲公司（虚构）", rep, None)])
    assert id_prefix(org) in _listed(store)
    store.upsert([], [(org, "organization", "甲公司（虚构）", None, None)])
    assert id_prefix(org) not in _listed(store)


def test_related_persons_are_answered_by_role_and_withheld_role_by_role(store: Store) -> None:
    org, principal, director, rep = org_id(50), person(50), person(51), person(52)
    store.upsert([], [(org, "organization", "甲公司（虚构）", rep, None)], relations={
        org: [("principal", principal, "张示例"), ("director", director, None)]})
    shown = store.lookup(org, "organization", persons=True, history=False)
    assert {(p["role"], p["id"], p["name"]) for p in shown["subject"]["related_persons"]} == {
        ("legal_representative", rep, None), ("principal", principal, "张示例"),
        ("director", director, None)}
    assert shown["withheld"] == []
    hidden = store.lookup(org, "organization", persons=False, history=False)
    assert "related_persons" not in hidden["subject"]
    assert [w["role"] for w in hidden["withheld"]] == [
        "legal_representative", "director", "principal"]
    assert all(x not in str(hidden) for x in (principal, director, rep, "张示例"))
    # A new list replaces the organisation's related persons; an empty one clears them.
    store.upsert([], [(org, "organization", "甲公司（虚构）", rep, None)],
                 relations={org: [("shareholder", director, None)]})
    again = store.lookup(org, "organization", persons=True, history=False)
    assert {p["role"] for p in again["subject"]["related_persons"]} == {
        "legal_representative", "shareholder"}
    store.upsert([], [(org, "organization", "甲公司（虚构）", None, None)], relations={org: []})
    assert "related_persons" not in store.lookup(org, "organization", persons=True,
                                                 history=False)["subject"]


def test_roles_put_organisations_and_persons_in_the_set_as_the_catalogue_says(
    open_store: OpenStore,
) -> None:
    store = open_store()
    store.put_catalog(Catalog.load(demo_catalog()))
    principal, director = person(60), person(61)
    org, listed, directed = org_id(60), org_id(61), org_id(62)
    store.upsert(rows(entry("rl-1", principal, subject_kind="person"),
                      entry("rl-2", listed, list_code="tax.major_violation")), relations={
        org: [("principal", principal, None)], listed: [("director", director, None)],
        directed: [("director", director, None)]})
    # P-007 targets principals: the organisation of a listed principal is in the set.
    # P-009 reaches directors through a listed organisation: the director is, and so is
    # the organisation that person directs.
    assert {id_prefix(org), id_prefix(director), id_prefix(directed)} <= _listed(store)
    answer = store.lookup(director, "person", persons=True, history=False)
    assert [e["entry_id"] for e in answer["entries"]] == ["rl-2"]
    assert answer["subject"]["related_organizations"] == [{"id": listed, "role": "director"}]
    assert store.lookup(director, "person", persons=False, history=False)["entries"] == []
    v0 = store.refresh().version
    store.set_status("rl-2", EntryStatus.REPAIRED, None)
    assert store.delta(v0).removed == {id_prefix(listed), id_prefix(director),
                                       id_prefix(directed)}
    store.set_status("rl-1", EntryStatus.REPAIRED, None)
    assert id_prefix(org) not in _listed(store)
    assert counts(store) == counts(open_store())  # as a rebuild from the database


def test_related_persons_are_kept_hashed_and_sealed(store: Store) -> None:
    org, someone = org_id(70), person(70)
    store.upsert([], [], relations={org: [("director", someone, "李示例")]})
    assert isinstance(store, SQLiteStore | PostgresStore)
    raw = store._conn().execute("SELECT * FROM relations").fetchall()
    text = repr(raw)
    assert org in text and someone not in text and "李示例" not in text
    assert someone.encode() not in b"".join(bytes(c) for r in raw for c in r
                                            if isinstance(c, bytes | memoryview))


def test_a_staged_catalogue_is_kept_apart_and_seen_by_every_process(
    open_store: OpenStore,
) -> None:
    a, b = open_store(), open_store()
    a.put_catalog(Catalog.load(demo_catalog()))
    assert b.staged_catalog() is None
    draft = Catalog.load({**demo_catalog(), "version": "draft-1"})
    made = a.stage_catalog(draft)
    assert made is not None and (made.serial, made.schema) == (1, 2)
    seen = b.staged_catalog()
    assert seen is not None and (seen.serial, seen.catalog.version) == (1, "draft-1")
    assert b.refresh().catalog_serial == 1  # the current catalogue is unchanged
    again = b.stage_catalog(draft)
    assert again is not None and again.serial == 2
    assert a.stage_catalog(None) is None and b.staged_catalog() is None


def counts(store: Store) -> Counter[int]:
    """A store's in-memory reference counts of the prefix set."""
    assert isinstance(store, SQLiteStore | PostgresStore)
    return store.index.counts()


def _listed(store: Store) -> set[int]:
    packed = store.snapshot().packed
    return {int.from_bytes(packed[i : i + 4], "big") for i in range(0, len(packed), 4)}


def test_a_wrong_data_key_or_a_newer_schema_is_refused(tmp_path: Path) -> None:
    signer = Signer.generate()
    SQLiteStore(tmp_path / "s.db", signer, PersonalData(os.urandom(32))).close()
    with pytest.raises(ConfigurationError, match="data key"):
        SQLiteStore(tmp_path / "s.db", signer, PersonalData(os.urandom(32)))
    import sqlite3

    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    conn.close()
    with pytest.raises(ConfigurationError, match="schema 99"):
        SQLiteStore(tmp_path / "s.db", signer, PersonalData(os.urandom(32)))


def test_counts_survive_many_processes_writing_in_turn(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(3)]
    stores[0].put_catalog(Catalog.load(demo_catalog()))
    rng = random.Random(5)
    for i in range(30):
        s = stores[rng.randrange(3)]
        if i % 3 == 2:
            s.set_status(f"c-{i - 1}", rng.choice(list(EntryStatus)), None)
        else:
            s.upsert(rows(entry(f"c-{i}", org_id(50 + i % 7),
                                legal_representative_id=person(i % 4))))
    fresh = open_store()  # its set is rebuilt from the database
    for s in stores:
        s.refresh()
        assert counts(s) == counts(fresh)
        assert s.snapshot() == fresh.snapshot()


def test_feedback_is_counted_by_kind_on_every_engine(open_store: OpenStore) -> None:
    a, b = open_store(), open_store()
    kinds = ["decision", "rescreen", "commitment", "commitment_breached", "rescreen"]
    a.add_feedback([intake(f"k{i}")._replace(kind=k) for i, k in enumerate(kinds)])
    b.add_feedback([intake("k9")._replace(kind="case_opened")])
    assert {r["kind"]: r["records"] for r in b.stats()["by_kind"]} == {
        "case_opened": 1, "commitment": 1, "commitment_breached": 1, "decision": 1,
        "rescreen": 2}


# -- signing keys (receipts stay verifiable after a rotation) and health --------------------


def test_the_first_signing_key_is_recorded_as_current(store: Store) -> None:
    keys = store.signing_keys()
    assert [k["public_key"] for k in keys] == [store.signer.public_key]
    assert keys[0]["valid_until"] is None and keys[0]["valid_from"]


def test_a_rotation_lists_the_previous_key_and_department_keys_keep_working(
        open_store: OpenStore) -> None:
    old = open_store()
    made = old.create_key("市交易中心", allow_persons=False)
    before = old.find_key(made["api_key"])
    new = Signer.generate()
    assert old.rotate_signing_key(new) is True
    assert old.rotate_signing_key(new) is False  # run again: nothing more to do
    old.close()
    # Every instance restarts with the new key.
    fresh = open_store(new)
    keys = fresh.signing_keys()
    assert [k["public_key"] for k in keys] == [new.public_key, old.signer.public_key]
    assert keys[0]["valid_until"] is None
    assert keys[1]["valid_until"] is not None and keys[1]["valid_until"] >= keys[1]["valid_from"]
    # The department keys were re-sealed for the new key: the same feedback key comes back.
    after = fresh.find_key(made["api_key"])
    assert before is not None and after is not None
    assert after.feedback_key == before.feedback_key and after.department == "市交易中心"


def test_a_retired_signing_key_is_never_made_current_again(open_store: OpenStore) -> None:
    old = open_store()
    first = old.signer
    new = Signer.generate()
    old.rotate_signing_key(new)
    old.close()
    with pytest.raises(StoreError, match="retired"):
        open_store(new).rotate_signing_key(first)


def test_ping_reaches_the_database(store: Store) -> None:
    store.ping()
