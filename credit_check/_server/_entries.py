"""Entries and subjects in the SQL store: what each contributes to the prefix set, the
write of an upsert with the reference-count changes it makes, and the lookup answer with
what it withholds (DESIGN §9.1). Plain SQL on a DB-API connection.

A subject's prefix is in the set when it has a counting entry; so is the prefix of the
legal representative of an organisation with a counting entry on a list through which
an organisation reaches its representative ("rep list", :attr:`Reach.rep_lists`); so is
every prefix the related persons' roles put there (``_relations``): of an organisation
whose person of a targeted role is listed, and of a person who holds a via role in a
listed organisation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from credit_check._server import _relations
from credit_check._server._personal import PersonalData
from credit_check._server._relations import Reach, chunks, value_sets
from credit_check._server._schema import (
    INSERT_ENTRY,
    INSERT_SUBJECT,
    stored_entry,
    stored_subject,
)
from credit_check._server._store import COUNTING, EntryRow, SubjectRow, now_cst

WRITE_CHUNK = 5000
WITHHELD_REASON = "key_not_allowed_persons"
# (connection, table, stored rows) -> None: an engine's bulk upsert
Bulk = Callable[[Any, str, list[tuple[Any, ...]]], None]

# entry_id, subject_key, subject_kind, subject_prefix, rep_key, rep_prefix, list_code,
# status, sealed, data
_COLUMNS = ("entry_id, subject_key, subject_kind, subject_prefix, rep_key, rep_prefix, "
            "list_code, status, sealed, data")
@dataclass
class Change:
    """The prefix reference-count changes of one versioned write, and its client hints."""

    minus: list[int] = field(default_factory=list)
    plus: list[int] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)  # prefixes whose entries changed
    lifted: set[str] = field(default_factory=set)
    rebuild: bool = False
    skip: bool = False  # nothing was changed: no new version


def direct(row: tuple[Any, ...], reach: Reach) -> list[int]:
    """The prefixes one stored entry row puts in the set (subject, representative)."""
    if row[7] not in COUNTING:
        return []
    if row[5] is not None and row[6] in reach.rep_lists:
        return [row[3], row[5]]
    return [row[3]]


def all_contributions(conn: Any, reach: Reach) -> Iterator[int]:
    """Every prefix contribution, read from the database (to rebuild the set)."""
    cursor = conn.execute("SELECT subject_prefix, rep_prefix, list_code FROM entries "
                          "WHERE status IN (?, ?)", COUNTING)
    rep_lists = reach.rep_lists
    while batch := cursor.fetchmany(10_000):
        for subject_prefix, rep_prefix, list_code in batch:
            yield subject_prefix
            if rep_prefix is not None and list_code in rep_lists:
                yield rep_prefix
    yield from relation_contributions(conn, reach)


def relation_contributions(conn: Any, reach: Reach) -> Iterator[int]:
    """The contributions of every role (both kinds, see ``_relations``)."""
    yield from _relations.role_contributions(conn, reach, None)
    yield from _relations.via_contributions(conn, reach, None)


def _persons_of(row: tuple[Any, ...], reach: Reach) -> Iterator[str]:
    # Persons whose organisations' contributions a change of this row may move.
    if row[2] == "person" and row[6] in reach.role_lists:
        yield row[1]
    if row[4] is not None:
        yield row[4]


def _clear(personal: PersonalData, row: tuple[Any, ...]) -> bytes:
    return personal.open(row[9], f"entry:{row[0]}") if row[8] else bytes(row[9])


def write(conn: Any, personal: PersonalData, reach: Reach, rows: list[EntryRow],
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
    orgs = {r[1] for r in stored if r[2] == "organization"}
    old_by_id: dict[str, tuple[Any, ...]] = {}
    for cond, params in value_sets(conn, [r[0] for r in stored]):
        for old in conn.execute(f"SELECT {_COLUMNS} FROM entries WHERE entry_id {cond}",  # noqa: S608
                                params):
            old_by_id[old[0]] = old
            persons.update(_persons_of(old, reach))
            if old[2] == "organization":
                orgs.add(old[1])
    for cond, params in value_sets(conn, [s[0] for s in new_subjects]):
        persons.update(r[0] for r in conn.execute(
            f"SELECT rep_key FROM subjects WHERE rep_key IS NOT NULL AND subject_key {cond}",  # noqa: S608
            params))
    persons.update(s[4] for s in new_subjects if s[4] is not None)
    for row, new in zip(rows, stored, strict=True):
        persons.update(_persons_of(new, reach))
        old = old_by_id.get(new[0])
        before = direct(old, reach) if old else []
        after = direct(new, reach)
        change.minus += before
        change.plus += after
        if old is None or old[7] != new[7] or _clear(personal, old) != row[6].encode():
            change.touched.update(before, after)
    if reach.chain:
        # An organisation's listing reaches its persons, and through them the
        # organisations where they hold a targeted role.
        persons.update(_relations.persons_in(conn, orgs))
    orgs_before = _relations.role_contributions(conn, reach, persons)
    via_before = _relations.via_contributions(conn, reach, orgs)
    if bulk is not None:
        bulk(conn, "entries", stored)
        if new_subjects:
            bulk(conn, "subjects", new_subjects)
    else:
        for chunk in chunks(stored, WRITE_CHUNK):
            # SQLite lets go of the GIL while it works on each row, so lookups go on.
            conn.executemany(INSERT_ENTRY, chunk)
        if new_subjects:
            conn.executemany(INSERT_SUBJECT, new_subjects)
    orgs_after = _relations.role_contributions(conn, reach, persons)
    via_after = _relations.via_contributions(conn, reach, orgs)
    change.minus += orgs_before + via_before
    change.plus += orgs_after + via_after
    change.touched.update(orgs_before, orgs_after, via_before, via_after)
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
    may not see them (§9.1) and entries that do not count from a department key.

    An organisation's answer names its related persons by role (§9.5); a person's carries
    the entries of the organisations in which the person holds a role, and the roles."""
    key = personal.subject_key(subject_id, kind)
    withheld: list[dict[str, str]] = []
    if kind == "person" and not persons:
        withheld.append({"role": "subject", "reason": WITHHELD_REASON})
        return _answer(subject_id, kind, None, None, [], None, withheld, version)
    status = "" if history else " AND status IN (?, ?)"
    extra = [] if history else list(COUNTING)
    sql = (f"SELECT {_COLUMNS} FROM entries WHERE subject_key = ?{status} UNION ALL "  # noqa: S608
           f"SELECT {_COLUMNS} FROM entries WHERE rep_key = ? AND subject_key != ?{status}")
    params = [key, *extra, key, key, *extra]
    if kind == "person":
        sql += (f" UNION ALL SELECT {_COLUMNS} FROM entries WHERE subject_key IN "  # noqa: S608
                f"(SELECT org_key FROM relations WHERE person_key = ?){status}")
        params += [key, *extra]
    rows = list({r[0]: r for r in conn.execute(sql, params).fetchall()}.values())
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
    related: list[dict[str, Any]] = []
    organizations: list[dict[str, str]] = []
    if kind == "organization":
        if persons:
            related = _relations.persons_of(conn, personal, key)
        else:
            withheld += [{"role": role, "reason": WITHHELD_REASON}
                         for role in _relations.roles_on_record(conn, key)]
    else:
        listed = {e["subject_id"] for e in entries if e["subject_kind"] == "organization"}
        organizations = [{"id": org, "role": role}
                         for org, role in _relations.roles_held(conn, key) if org in listed]
        organizations += [{"id": e["subject_id"], "role": _relations.LEGAL_REPRESENTATIVE}
                          for e in entries if e.get("legal_representative_id") == subject_id
                          and e["subject_id"] != subject_id]
        organizations = list({(o["id"], o["role"]): o for o in organizations}.values())
    if rep_id and persons:
        rep_row = conn.execute("SELECT personal FROM subjects WHERE subject_key = ?",
                               (personal.subject_key(rep_id),)).fetchone()
        rep_name = None
        if rep_row and rep_row[0]:
            rep_key = personal.subject_key(rep_id)
            rep_name = json.loads(personal.open(rep_row[0], f"subject:{rep_key}")).get("name")
        rep = {"id": rep_id, "name": rep_name}
        related.insert(0, {"id": rep_id, "role": _relations.LEGAL_REPRESENTATIVE,
                           "name": rep_name})
    elif rep_id:
        withheld.insert(0, {"role": "legal_representative", "reason": WITHHELD_REASON})
        for e in entries:
            e["legal_representative_id"] = None
    entries.sort(key=lambda e: e["entry_id"])
    answer = _answer(subject_id, kind, name, rep, entries, clean_since, withheld, version)
    if related:
        answer["subject"]["related_persons"] = related
    if organizations:
        answer["subject"]["related_organizations"] = organizations
    return answer


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
