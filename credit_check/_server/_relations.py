"""Persons related to organisations in roles (DESIGN §9.5: 主要负责人, 注册执业人员, 董事,
股东, …) in the SQL store, and what the catalogue makes of them in the prefix set.

The legal representative stays where wave 1 keeps it (the subject record and the
entries); every other role is a row of ``relations``: the organisation by USCC, the person
by keyed hash, and the person's id and name sealed. Plain SQL on a DB-API connection.

What the catalogue makes of a role (:class:`Reach`): a measure that targets a role puts
an organisation's prefix in the set while its person of that role has a counting entry on
one of the measure's lists, or holds one of the measure's via roles in an organisation
that has one (a client checking the organisation alone then looks it up); a measure
whose ``via_roles`` name a role puts a person's prefix in the set while an organisation
in which the person holds that role has a counting entry on one of its lists (a client
checking the person looks them up and finds the organisation's entry).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from credit_check._codes import Target
from credit_check._crypto import id_prefix
from credit_check._models import Catalog
from credit_check._server._personal import PersonalData
from credit_check._server._store import COUNTING

LEGAL_REPRESENTATIVE = str(Target.LEGAL_REPRESENTATIVE)
IN_CHUNK = 400
ARRAY_CHUNK = 20_000
# org id, role, person id, person's name
RelationRow = tuple[str, str, str, str | None]


def table(blob: str) -> list[str]:
    """The statements that make the table (``blob``: the engine's byte-string type);
    safe to run on a database that has it already."""
    return [
        "CREATE TABLE IF NOT EXISTS relations (org_key TEXT NOT NULL, role TEXT NOT NULL, "
        "person_key TEXT NOT NULL, org_prefix BIGINT NOT NULL, person_prefix BIGINT NOT NULL, "
        f"personal {blob} NOT NULL, PRIMARY KEY (org_key, role, person_key))",
        "CREATE INDEX IF NOT EXISTS relations_person ON relations (person_key)",
    ]


@dataclass(frozen=True)
class Reach:
    """Which lists reach related persons, by role, under one catalogue.

    Attributes:
        roles: role -> lists of the measures targeting the role.
        via: role -> lists through which a listed organisation reaches its persons of
            that role (the measures' ``effective_via``).
        chain: (targeted role, via role) -> lists of the measures targeting the first
            through the second: an organisation whose person of the targeted role holds
            the via role in an organisation listed on one of them.
    """

    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    via: dict[str, frozenset[str]] = field(default_factory=dict)
    chain: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, catalog: Catalog | None) -> Reach:
        roles: dict[str, set[str]] = {}
        via: dict[str, set[str]] = {}
        chain: dict[tuple[str, str], set[str]] = {}
        for m in catalog.measures if catalog is not None else ():
            if m.target != Target.SUBJECT:
                roles.setdefault(str(m.target), set()).update(m.list_codes)
            for role in m.effective_via:
                via.setdefault(str(role), set()).update(m.list_codes)
                if m.target != Target.SUBJECT:
                    chain.setdefault((str(m.target), str(role)), set()).update(m.list_codes)
        return cls({r: frozenset(v) for r, v in roles.items() if v},
                   {r: frozenset(v) for r, v in via.items() if v},
                   {k: frozenset(v) for k, v in chain.items() if v})

    @property
    def rep_lists(self) -> frozenset[str]:
        """Lists whose entries reach an organisation's legal representative."""
        return self.via.get(LEGAL_REPRESENTATIVE, frozenset())

    @property
    def role_lists(self) -> frozenset[str]:
        """Every list a role-targeted measure names."""
        return frozenset().union(*self.roles.values())


def marks(n: int) -> str:
    """``n`` parameter marks: ``?,?,…``."""
    return ",".join("?" * n)


def chunks(values: list[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def value_sets(conn: Any, values: list[Any]) -> Iterator[tuple[str, list[Any]]]:
    """``values`` a chunk at a time, as a condition on a column with its parameters:
    ``IN (?, …)``, or ``= ANY(?)`` with one array where the connection takes arrays
    (PostgreSQL: one short statement, parsed once, whatever the number of values — an
    ``IN`` list of 400 marks is parsed again by psycopg for every statement)."""
    if getattr(conn, "arrays", False):
        for chunk in chunks(values, ARRAY_CHUNK):
            yield "= ANY(?)", [chunk]
    else:
        for chunk in chunks(values):
            yield f"IN ({marks(len(chunk))})", chunk


def _role_clause(lists: Mapping[str, frozenset[str]], role: str, code: str
                 ) -> tuple[str, list[str]]:
    # "(role = ? AND list_code IN (...)) OR ...", with its parameters
    parts, params = [], []
    for name, codes in sorted(lists.items()):
        parts.append(f"({role} = ? AND {code} IN ({marks(len(codes))}))")
        params += [name, *sorted(codes)]
    return " OR ".join(parts), params


def stored(personal: PersonalData, row: RelationRow) -> tuple[Any, ...]:
    """A relation as stored: keyed and prefixed, the person's id and name sealed."""
    org_id, role, person_id, name = row
    org_key, person_key = personal.subject_key(org_id, "organization"), personal.subject_key(
        person_id, "person")
    blob = personal.seal(json.dumps({"id": person_id, "name": name}, ensure_ascii=False)
                         .encode(), f"relation:{org_key}:{role}:{person_key}")
    return (org_key, role, person_key, id_prefix(org_id), id_prefix(person_id), blob)


def replace(conn: Any, personal: PersonalData,
            relations: Mapping[str, Sequence[tuple[str, str, str | None]]]) -> int:
    """Replace the related persons of each organisation given (org id -> ``[(role,
    person id, name)]``); the legal representative is not kept here. Returns the rows
    written."""
    rows = [stored(personal, (org, role, pid, name))
            for org, persons in relations.items() for role, pid, name in persons
            if role != LEGAL_REPRESENTATIVE]
    orgs = sorted(relations)
    for cond, keys in value_sets(conn, orgs):
        conn.execute(f"DELETE FROM relations WHERE org_key {cond}", keys)  # noqa: S608
    if rows:
        conn.executemany("INSERT INTO relations (org_key, role, person_key, org_prefix, "
                         "person_prefix, personal) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                         "(org_key, role, person_key) DO UPDATE SET personal = excluded.personal",
                         rows)
    return len(rows)


_EDGES = ("SELECT subject_key AS org_key, prefix AS org_prefix, rep_key AS person_key, "
          "'legal_representative' AS role FROM subjects WHERE rep_key {cond} UNION "
          "SELECT subject_key, subject_prefix, rep_key, 'legal_representative' FROM entries "
          "WHERE rep_key {cond} UNION "
          "SELECT org_key, org_prefix, person_key, role FROM relations WHERE person_key {cond}")


def _reached(reach: Reach) -> tuple[str, list[str]]:
    # When the person of edge r counts for its role: listed on a list of a measure on that
    # role, or holding one of its via roles in an organisation listed on one.
    parts: list[str] = []
    params: list[str] = []
    if reach.roles:
        clause, more = _role_clause(reach.roles, "r.role", "p.list_code")
        parts.append("EXISTS (SELECT 1 FROM entries p WHERE p.subject_key = r.person_key AND "  # noqa: S608
                     f"p.status IN (?, ?) AND ({clause}))")
        params += [*COUNTING, *more]
    held = {k: v for k, v in reach.chain.items() if k[1] != LEGAL_REPRESENTATIVE}
    if held:
        ors: list[str] = []
        more = []
        for (target, via), codes in sorted(held.items()):
            ors.append(f"(r.role = ? AND x.role = ? AND e.list_code IN ({marks(len(codes))}))")
            more += [target, via, *sorted(codes)]
        parts.append("EXISTS (SELECT 1 FROM relations x JOIN entries e ON e.subject_key = "  # noqa: S608
                     "x.org_key WHERE x.person_key = r.person_key AND e.status IN (?, ?) AND "
                     f"({' OR '.join(ors)}))")
        params += [*COUNTING, *more]
    reps = {k[0]: v for k, v in reach.chain.items() if k[1] == LEGAL_REPRESENTATIVE}
    if reps:
        clause, more = _role_clause(reps, "r.role", "e.list_code")
        parts.append("EXISTS (SELECT 1 FROM entries e WHERE e.rep_key = r.person_key AND "  # noqa: S608
                     f"e.subject_key != r.org_key AND e.status IN (?, ?) AND ({clause}))")
        params += [*COUNTING, *more]
    return " OR ".join(parts), params


def role_contributions(conn: Any, reach: Reach, persons: Iterable[str] | None) -> list[int]:
    """Organisations' prefixes put in the set through their persons of a targeted role:
    of the persons (keys) in ``persons`` (None: of all)."""
    if not reach.roles:
        return []
    condition, tail = _reached(reach)
    listed = f"({condition})"
    if persons is None:
        sql = f"SELECT r.org_prefix FROM ({_EDGES.format(cond='IS NOT NULL')}) r WHERE {listed}"  # noqa: S608
        return [row[0] for row in conn.execute(sql, tail)]
    out: list[int] = []
    for cond, keys in value_sets(conn, sorted(persons)):
        sql = f"SELECT r.org_prefix FROM ({_EDGES.format(cond=cond)}) r WHERE {listed}"  # noqa: S608
        out += [row[0] for row in conn.execute(sql, [*keys, *keys, *keys, *tail])]
    return out


def via_contributions(conn: Any, reach: Reach, orgs: Iterable[str] | None) -> list[int]:
    """Persons' prefixes put in the set through a listed organisation in which they hold
    a via role (one per counting entry): of the organisations (keys) in ``orgs`` (None:
    of all). The legal representative's are the entries' own (``rep_prefix``)."""
    via = {r: v for r, v in reach.via.items() if r != LEGAL_REPRESENTATIVE}
    if not via:
        return []
    clause, params = _role_clause(via, "r.role", "e.list_code")
    sql = ("SELECT r.person_prefix FROM relations r JOIN entries e ON e.subject_key = "  # noqa: S608
           f"r.org_key WHERE e.status IN (?, ?) AND ({clause})")
    if orgs is None:
        return [row[0] for row in conn.execute(sql, [*COUNTING, *params])]
    out: list[int] = []
    for cond, keys in value_sets(conn, sorted(orgs)):
        out += [row[0] for row in conn.execute(
            sql + f" AND r.org_key {cond}", [*COUNTING, *params, *keys])]
    return out


def persons_in(conn: Any, orgs: Iterable[str]) -> set[str]:
    """The keys of the persons related to any of the organisations (keys) ``orgs``."""
    out: set[str] = set()
    for cond, keys in value_sets(conn, sorted(orgs)):
        out.update(row[0] for row in conn.execute(
            f"SELECT person_key FROM relations WHERE org_key {cond}", keys))  # noqa: S608
    return out


def persons_of(conn: Any, personal: PersonalData, org_key: str) -> list[dict[str, Any]]:
    """An organisation's related persons but the legal representative: ``{id, role,
    name}`` each, ordered by role."""
    out = []
    for role, person_key, blob in conn.execute(
            "SELECT role, person_key, personal FROM relations WHERE org_key = ? "
            "ORDER BY role, person_key", (org_key,)).fetchall():
        data = json.loads(personal.open(blob, f"relation:{org_key}:{role}:{person_key}"))
        out.append({"id": data["id"], "role": role, "name": data.get("name")})
    return out


def roles_held(conn: Any, person_key: str) -> list[tuple[str, str]]:
    """``(organisation id, role)`` for each role the person holds (not as legal
    representative); an organisation's key is its USCC."""
    return [(row[0], row[1]) for row in conn.execute(
        "SELECT org_key, role FROM relations WHERE person_key = ? ORDER BY org_key, role",
        (person_key,)).fetchall()]


def roles_on_record(conn: Any, org_key: str) -> list[str]:
    """The roles an organisation has persons on record for (not the legal representative)."""
    return [row[0] for row in conn.execute(
        "SELECT DISTINCT role FROM relations WHERE org_key = ? ORDER BY role",
        (org_key,)).fetchall()]
