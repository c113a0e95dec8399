"""Which catalogue schema a catalogue needs, and the form a schema-1 (wave-1) client can
parse (DESIGN §9.0): that client refuses unknown fields, scenarios, targets and effects,
so it gets the catalogue without them and is told ``upgrade_required``.
"""

from __future__ import annotations

import json
from typing import Any

from credit_check._codes import Effect, Scenario, Target
from credit_check._models import Catalog, Measure
from credit_check._server._store import StoredCatalog

# Schema 1: the shapes of DESIGN §6 only. Schema 2: open codes, extra fields, named
# scenarios, layers, related persons' roles, the measure fields of issue 14.
NEWEST_SCHEMA = 2
_WAVE1_TARGETS = (Target.SUBJECT, Target.LEGAL_REPRESENTATIVE)


def _wave1_measure(catalog: Catalog, m: Measure) -> dict[str, Any] | None:
    """A measure as a schema-1 client reads it, or None when it cannot say it exactly."""
    layer = catalog.layer_of(m) if m.layer is not None else None
    if layer is not None and layer.region is not None:
        return None  # a supplement: a schema-1 client has no region to select it by
    if not isinstance(m.effect, Effect) or m.target not in _WAVE1_TARGETS:
        return None
    # Schema 1 knows one via rule: a measure on the legal representative reaches the
    # organisations the person represents, and no other measure reaches any.
    wave1_via = (Target.LEGAL_REPRESENTATIVE,) if m.target is Target.LEGAL_REPRESENTATIVE else ()
    if tuple(m.effective_via) != wave1_via:
        return None
    scenarios = [s for s in m.scenarios if isinstance(s, Scenario)]
    if not scenarios:
        return None
    return {"code": m.code, "name": m.name, "effect": str(m.effect),
            "list_codes": list(m.list_codes), "scenarios": [str(s) for s in scenarios],
            "target": str(m.target), "legal_basis": m.legal_basis,
            "implementing_department": m.implementing_department, "params": dict(m.params)}


def wave1_form(catalog: Catalog) -> dict[str, Any]:
    """The catalogue as a schema-1 client can parse it: every list, and the measures it
    can apply exactly (national, known effects and scenarios, subject or legal
    representative); the rest is left out, which is why such a client is told
    ``upgrade_required`` whenever this form is not the whole catalogue."""
    measures = [w for m in catalog.measures if (w := _wave1_measure(catalog, m)) is not None]
    used = {code for m in measures for code in m["list_codes"]}
    return {
        "version": catalog.version,
        "lists": [{"code": x.code, "kind": x.kind.value, "name": x.name,
                   "suspend_on_objection": x.suspend_on_objection}
                  for x in catalog.lists if x.layer is None or x.code in used],
        "measures": measures,
    }


def _plain(catalog: Catalog) -> dict[str, Any]:
    return catalog.model_dump(mode="json", exclude_defaults=True)


def required_schema(catalog: Catalog) -> int:
    """1 when a schema-1 client can parse the catalogue whole, else 2."""
    return 1 if _plain(Catalog.load(wave1_form(catalog))) == _plain(catalog) else NEWEST_SCHEMA


def stored_form(catalog: Catalog, schema: int) -> dict[str, Any]:
    """What is stored and signed for a catalogue of ``schema``: a schema-1 catalogue in the
    exact shape schema-1 clients parse; a newer one whole (unknown fields kept)."""
    return wave1_form(catalog) if schema == 1 else catalog.model_dump(mode="json")


# -- the staged catalogue (a dry-run beside the current one) ---------------------------------

_STAGED = "staged_catalog"
_cache: dict[str, StoredCatalog] = {}


def stage(conn: Any, catalog: Catalog | None) -> StoredCatalog | None:
    """Stage ``catalog`` (None: withdraw the staged one) inside the caller's transaction;
    each staging gets the next staging serial. Plain SQL on the ``meta`` table."""
    if catalog is None:
        conn.execute("DELETE FROM meta WHERE name = ?", (_STAGED,))
        return None
    row = conn.execute(
        "INSERT INTO meta (name, value) VALUES ('staged_serial', '1') ON CONFLICT (name) DO "
        "UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT) RETURNING value"
    ).fetchone()
    serial = int(row[0])
    schema = required_schema(catalog)
    raw = stored_form(catalog, schema)
    text = json.dumps({"serial": serial, "schema": schema, "catalog": raw}, ensure_ascii=False)
    conn.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                 "SET value = excluded.value", (_STAGED, text))
    return StoredCatalog(Catalog.load(raw), raw, serial, schema)


def staged(text: str | None) -> StoredCatalog | None:
    """The staged catalogue from its ``meta`` text (parsed once per text)."""
    if text is None:
        return None
    held = _cache.get(text)
    if held is None:
        data = json.loads(text)
        held = StoredCatalog(Catalog.load(data["catalog"]), data["catalog"], int(data["serial"]),
                             int(data["schema"]))
        _cache.clear()  # one staged catalogue at a time
        _cache[text] = held
    return held


def staged_name() -> str:
    """The ``meta`` row the staged catalogue is kept in."""
    return _STAGED
