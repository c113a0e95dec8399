"""Entries and subjects in the SQL store: what each contributes to the prefix set, the
write of an upsert with the reference-count changes it makes, and the lookup answer with
what it withholds (DESIGN §9.1). Plain SQL on a DB-API connection.

A subject's prefix is in the set when it has a counting entry; so is the prefix of the
legal representative of an organisation with a counting entry on a list that a
``target: legal_representative`` measure names ("rep list"); and so is the prefix of every
organisation whose recorded legal representative has a counting entry on a rep list, so
that a client that checks the organisation alone looks it up and finds the representative.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from credit_check._server._personal import PersonalData
from credit_check._server._schema import (
    INSERT_ENTRY,
    INSERT_SUBJECT,
    stored_entry,
    stored_subject,
)
from credit_check._server._store import COUNTING, EntryRow, SubjectRow, now_cst

WRITE_CHUNK = 5000
IN_CHUNK = 400
ARRAY_CHUNK = 20_000
WITHHELD_REASON = "key_not_allowed_persons"
# (connection, table, stored rows) -> None: an engine's bulk upsert
Bulk = Callable[[Any, str, list[tuple[Any, ...]]], None]

# entry_id, subject_key, subject_kind, subject_prefix, rep_key, rep_prefix, list_code,
# status, sealed, data
_COLUMNS = ("entry_id, subject_key, subject_kind, subject_prefix, rep_key, rep_prefix, "
            "list_code, status, sealed, data")
_EDGES = ("SELECT subject_key AS org_key, prefix AS org_prefix, rep_key FROM subjects "
          "WHERE rep_key {cond} UNION "
          "SELECT subject_key, subject_prefix, rep_key FROM entries WHERE rep_key {cond}")


@dataclass
class Change:
    """The prefix reference-count changes of one versioned write, and its client hints."""

    minus: list[int] = field(default_factory=list)
    plus: list[int] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)  # prefixes whose entries changed
    lifted: set[str] = field(default_factory=set)
    rebuild: bool = False
    skip: bool = False  # nothing was changed: no new version


def _in(n: int) -> str:
    return ",".join("?" * n)


def _chunks(values: list[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _sets(conn: Any, values: list[Any]) -> Iterator[tuple[str, list[Any]]]:
    """``values`` a chunk at a time, as a condition on a column with its parameters:
    ``IN (?, …)``, or ``= ANY(?)`` with one array where the connection takes arrays
    (PostgreSQL: one short statement, parsed once, whatever the number of values)."""
    if getattr(conn, "arrays", False):
        for chunk in _chunks(values, ARRAY_CHUNK):
            yield "= ANY(?)", [chunk]
    else:
        for chunk in _chunks(values):
            yield f"IN ({_in(len(chunk))})", chunk


def direct(row: tuple[Any, ...], rep_lists: set[str]) -> list[int]:
    """The prefixes one stored entry row puts in the set (subject, representative)."""
    if row[7] not in COUNTING:
        return []
    if row[5] is not None and row[6] in rep_lists:
        return [row[3], row[5]]
    return [row[3]]


def org_contributions(conn: Any, rep_lists: set[str], persons: Iterable[str] | None
                      ) -> list[int]:
    """The organisations' prefixes put in the set through their representatives: of the
    representatives in ``persons`` (None: of all)."""
    if not rep_lists:
        return []
    listed = (f"EXISTS (SELECT 1 FROM entries p WHERE p.subject_key = r.rep_key AND "  # noqa: S608
              f"p.status IN (?, ?) AND p.list_code IN ({_in(len(rep_lists))}))")
    tail = [*COUNTING, *sorted(rep_lists)]
    if persons is None:
        sql = (f"SELECT r.org_prefix FROM ({_EDGES.format(cond='IS NOT NULL')}) r "  # noqa: S608
               f"WHERE {listed}")
        return [row[0] for row in conn.execute(sql, tail)]
    out: list[int] = []
    for cond, params in _sets(conn, sorted(persons)):
        sql = f"SELECT r.org_prefix FROM ({_EDGES.format(cond=cond)}) r WHERE {listed}"  # noqa: S608
        out += [row[0] for row in conn.execute(sql, [*params, *params, *tail])]
    return out


def all_contributions(conn: Any, rep_lists: set[str]) -> Iterator[int]:
    """Every prefix contribution, read from the database (to rebuild the set)."""
    cursor = conn.execute("SELECT subject_prefix, rep_prefix, list_code FROM entries "
                          "WHERE status IN (?, ?)", COUNTING)
    while batch := cursor.fetchmany(10_000):
        for subject_prefix, rep_prefix, list_code in batch:
            yield subject_prefix
            if rep_prefix is not None and list_code in rep_lists:
                yield rep_prefix
    yield from org_contributions(conn, rep_lists, None)


def _persons_of(row: tuple[Any, ...], rep_lists: set[str]) -> Iterator[str]:
    # Representatives whose organisations' contributions a change of this row may move.
    if row[2] == "person" and row[6] in rep_lists:
        yield row[1]
    if row[4] is not None:
        yield row[4]


def _clear(personal: PersonalData, row: tuple[Any, ...]) -> bytes:
    return personal.open(row[9], f"entry:{row[0]}") if row[8] else bytes(row[9])


def write(conn: Any, personal: PersonalData, rep_lists: set[str], rows: list[EntryRow],
          subjects: Iterable[SubjectRow], change: Change, bulk: Bulk | None = None
          ) -> tuple[int, int]:
    """Upsert entries and subjects inside the caller's transaction, adding their prefix
    changes to ``change``; returns (created, updated).

    Args:
        bulk: how an engine upserts many stored rows at once (``bulk(conn, table,
            rows)``, e.g. PostgreSQL's COPY); None: ``executemany``.
    """
    stored = [stored_entry(personal, r) for r in rows]
    new_subjects = [stored_subject(personal, s) for s in subjects]
    persons: set[str] = set()
    old_by_id: dict[str, tuple[Any, ...]] = {}
    for cond, params in _sets(conn, [r[0] for r in stored]):
        for old in conn.execute(f"SELECT {_COLUMNS} FROM entries WHERE entry_id {cond}",  # noqa: S608
                                params):
            old_by_id[old[0]] = old
            persons.update(_persons_of(old, rep_lists))
    for cond, params in _sets(conn, [s[0] for s in new_subjects]):
        persons.update(r[0] for r in conn.execute(
            f"SELECT rep_key FROM subjects WHERE rep_key IS NOT NULL AND subject_key {cond}",  # noqa: S608
            params))
    persons.update(s[4] for s in new_subjects if s[4] is not None)
    for row, new in zip(rows, stored, strict=True):
        persons.update(_persons_of(new, rep_lists))
        old = old_by_id.get(new[0])
        before = direct(old, rep_lists) if old else []
        after = direct(new, rep_lists)
        change.minus += before
        change.plus += after
        if old is None or old[7] != new[7] or _clear(personal, old) != row[6].encode():
            change.touched.update(before, after)
    orgs_before = org_contributions(conn, rep_lists, persons)
    if bulk is not None:
        bulk(conn, "entries", stored)
        if new_subjects:
            bulk(conn, "subjects", new_subjects)
    else:
        for chunk in _chunks(stored, WRITE_CHUNK):
            # SQLite lets go of the GIL while it works on each row, so lookups go on.
            conn.executemany(INSERT_ENTRY, chunk)
        if new_subjects:
            conn.executemany(INSERT_SUBJECT, new_subjects)
    orgs_after = org_contributions(conn, rep_lists, persons)
    change.minus += orgs_before
    change.plus += orgs_after
    change.touched.update(orgs_before, orgs_after)
    updated = len(old_by_id)
    return len(stored) - updated, updated


def read_entry(conn: Any, personal: PersonalData, entry_id: str) -> bytes | None:
    """One entry's JSON, or None when there is no such entry."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM entries WHERE entry_id = ?",  # noqa: S608
                       (entry_id,)).fetchone()
    return None if row is None else _clear(personal, row)


def lookup(conn: Any, personal: PersonalData, subject_id: str, kind: str, *, persons: bool,
           history: bool, version: int) -> dict[str, Any]:
    """The protocol answer for one subject, withholding natural persons from a key that
    may not see them (§9.1) and entries that do not count from a department key."""
    key = personal.subject_key(subject_id, kind)
    withheld: list[dict[str, str]] = []
    if kind == "person" and not persons:
        withheld.append({"role": "subject", "reason": WITHHELD_REASON})
        return _answer(subject_id, kind, None, None, [], None, withheld, version)
    status = "" if history else " AND status IN (?, ?)"
    extra = [] if history else list(COUNTING)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM entries WHERE subject_key = ?{status} UNION ALL "  # noqa: S608
        f"SELECT {_COLUMNS} FROM entries WHERE rep_key = ? AND subject_key != ?{status}",
        [key, *extra, key, key, *extra]).fetchall()
    entries = [json.loads(_clear(personal, r)) for r in rows]
    info = conn.execute("SELECT name, personal, clean_since FROM subjects WHERE "
                        "subject_key = ?", (key,)).fetchone()
    name, private, clean_since = info if info else (None, None, None)
    private_data = json.loads(personal.open(private, f"subject:{key}")) if private else {}
    rep_id = private_data.get("rep_id")
    if kind == "person":
        name = private_data.get("name")
    if rep_id is None and kind == "organization":
        rep_id = _rep_from_entries(conn, personal, key)
    if name is None:
        name = next((e["name"] for e in entries if e["subject_id"] == subject_id), None)
    rep = None
    if rep_id and persons:
        rep_row = conn.execute("SELECT personal FROM subjects WHERE subject_key = ?",
                               (personal.subject_key(rep_id),)).fetchone()
        rep_name = None
        if rep_row and rep_row[0]:
            rep_key = personal.subject_key(rep_id)
            rep_name = json.loads(personal.open(rep_row[0], f"subject:{rep_key}")).get("name")
        rep = {"id": rep_id, "name": rep_name}
    elif rep_id:
        withheld.append({"role": "legal_representative", "reason": WITHHELD_REASON})
        for e in entries:
            e["legal_representative_id"] = None
    entries.sort(key=lambda e: e["entry_id"])
    return _answer(subject_id, kind, name, rep, entries, clean_since, withheld, version)


def _rep_from_entries(conn: Any, personal: PersonalData, key: str) -> str | None:
    # An organisation without a subject record: its representative as its entries name
    # it (of any status: the person is on record whether or not the entry counts).
    row = conn.execute(f"SELECT {_COLUMNS} FROM entries WHERE subject_key = ? AND rep_key "  # noqa: S608
                       "IS NOT NULL ORDER BY entry_id LIMIT 1", (key,)).fetchone()
    if row is None:
        return None
    rep_id: str | None = json.loads(_clear(personal, row)).get("legal_representative_id")
    return rep_id


def _answer(subject_id: str, kind: str, name: str | None, rep: dict[str, Any] | None,
            entries: list[dict[str, Any]], clean_since: str | None,
            withheld: list[dict[str, str]], version: int) -> dict[str, Any]:
    return {"subject": {"id": subject_id, "kind": kind, "name": name,
                        "legal_representative": rep},
            "entries": entries, "clean_since": clean_since, "withheld": withheld,
            "data_version": str(version), "as_of": now_cst().isoformat()}
