"""Layers of a catalogue: the national base plus provincial and city supplements
(执行全国失信惩戒措施基础清单，制定适用于我省的失信惩戒措施补充清单). A supplement may add
measures and make a base measure stricter where it applies, never weaker; this module
says when it would, and merges supplement documents into one catalogue.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from credit_check._codes import Effect
from credit_check._exceptions import CatalogError

if TYPE_CHECKING:
    from credit_check._catalog import Catalog, Layer, Measure

_SEVERITY: dict[str, int] = {Effect.DENY: 3, Effect.REVIEW: 2, Effect.RESTRICT: 1}
# What a supplement document may hold besides its measures.
SUPPLEMENT_PARTS = ("layer", "lists", "scenarios", "measures")


def _names(values: set[str]) -> str:
    return ", ".join(repr(str(v)) for v in sorted(values))


def weakening(base: Measure, sup: Measure) -> str | None:
    """How ``sup`` (a supplement's version of the measure) would weaken ``base``, or None
    when it does not: a punishment keeps its lists, scenarios and via roles, an effect at
    least as severe and a period at least as long; a reward is granted no more widely."""
    if sup.target != base.target:
        return f"it targets {sup.target!r}, the base measure {base.target!r}"
    if base.effect in _SEVERITY and sup.effect in _SEVERITY:
        if _SEVERITY[sup.effect] < _SEVERITY[base.effect]:
            return f"its effect {sup.effect!r} is milder than the base's {base.effect!r}"
    elif sup.effect != base.effect:
        return f"its effect {sup.effect!r} is not the base's {base.effect!r}"
    lists, scenarios = set(sup.list_codes), set(sup.scenarios)
    if base.effect is Effect.GREEN_CHANNEL:
        if lists - set(base.list_codes):
            return f"it grants the reward for more lists ({_names(lists - set(base.list_codes))})"
        if scenarios - set(base.scenarios):
            return (f"it grants the reward in more scenarios "
                    f"({_names(scenarios - set(base.scenarios))})")
        if sup.clean_years is not None and (base.clean_years is None
                                            or sup.clean_years < base.clean_years):
            return (f"it grants the reward after {sup.clean_years} clean years, the base "
                    + (f"after {base.clean_years}" if base.clean_years else "never on a "
                       "clean record alone"))
        days, base_days = sup.params.get("commitment_days"), base.params.get("commitment_days")
        if days is not None and (base_days is None or days > base_days):
            return f"it allows {days} days to supply materials, the base {base_days or 0}"
        return None
    if set(base.list_codes) - lists:
        return f"it drops the lists {_names(set(base.list_codes) - lists)}"
    if set(base.scenarios) - scenarios:
        return f"it drops the scenarios {_names(set(base.scenarios) - scenarios)}"
    if set(base.effective_via) - set(sup.effective_via):
        return f"it drops the via roles {_names(set(base.effective_via) - set(sup.effective_via))}"
    if base.period_months is not None and (sup.period_months is None
                                           or sup.period_months < base.period_months):
        return (f"its period ({sup.period_months or 'none'} months) is shorter than the "
                f"base's {base.period_months} months")
    return None


def _ancestors(catalog: Catalog, layer: Layer) -> list[Layer | None]:
    # The layers whose measures apply wherever ``layer`` does: the base (None, or the
    # national layer) and every supplement for a region containing this one.
    region = layer.region or ""
    return [None, *(other for other in catalog.layers
                    if other.region is not None and len(other.region) < len(region)
                    and region.startswith(other.region))]


def layer_problems(catalog: Catalog) -> Iterator[str]:
    """A message for each supplement measure that would weaken a measure of a layer it
    builds on (the base, or a province's for a city supplement)."""
    by_layer: dict[str | None, dict[str, Measure]] = {}
    for m in catalog.measures:
        layer = catalog.layer_of(m) if m.layer is not None else None
        key = layer.code if layer is not None and layer.region is not None else None
        by_layer.setdefault(key, {})[m.code] = m
    for layer in catalog.layers:
        if layer.region is None:
            continue
        for code, sup in by_layer.get(layer.code, {}).items():
            for above in _ancestors(catalog, layer):
                above_key = above.code if above is not None and above.region else None
                base = by_layer.get(above_key, {}).get(code)
                if base is None:
                    continue
                why = weakening(base, sup)
                if why is not None:
                    where = (f"the supplement {above_key!r}" if above_key else "the national base")
                    yield (f"measure {code!r} of the supplement {layer.code!r} ({layer.name}) "
                           f"would weaken the measure of {where}: {why}. A supplement may add "
                           "measures and make a base measure stricter, never weaker")


def merge(base: Mapping[str, Any], supplements: Sequence[Any]) -> dict[str, Any]:
    """One catalogue from a base catalogue and supplement documents ``{layer, lists,
    scenarios, measures}``: each supplement's layer is added, its lists and scenarios
    joined (a list or scenario of the same code must be the same), its measures tagged
    with the layer. The result is validated by ``Catalog.load`` (which refuses a
    supplement that would weaken a base measure).

    Raises:
        CatalogError: a supplement is malformed or redefines a shared list or scenario.
    """
    out = copy.deepcopy(dict(base))
    out.pop("supplements", None)
    for part in ("layers", "lists", "scenarios", "measures"):
        if not isinstance(out.setdefault(part, []), list):
            raise CatalogError(f"invalid catalogue: {part} must be a list")
    for i, sup in enumerate(supplements):
        layer = sup.get("layer") if isinstance(sup, dict) else None
        if not isinstance(layer, dict) or not isinstance(layer.get("code"), str):
            raise CatalogError(f"invalid catalogue: supplements[{i}] needs a 'layer' with a "
                               "code, region, name, source_document and issuing_body")
        code = layer["code"]
        extra = set(sup) - set(SUPPLEMENT_PARTS)
        if extra:
            raise CatalogError(f"invalid catalogue: supplement {code!r} has unknown parts "
                               f"{_names(extra)} (a supplement has {', '.join(SUPPLEMENT_PARTS)})")
        out["layers"].append(layer)
        for part in ("lists", "scenarios"):
            items = sup.get(part, [])
            if not isinstance(items, list):
                raise CatalogError(f"invalid catalogue: supplement {code!r}: {part} must be a list")
            _join(out[part], items, part, code)
        measures = sup.get("measures", [])
        if not isinstance(measures, list):
            raise CatalogError(f"invalid catalogue: supplement {code!r}: measures must be a list")
        out["measures"] += [{**m, "layer": code} if isinstance(m, dict) else m
                            for m in measures]
    return out


def _join(into: list[Any], items: list[Any], part: str, layer: str) -> None:
    held = {item.get("code"): item for item in into if isinstance(item, dict)}
    for item in items:
        if not isinstance(item, dict):
            into.append(item)  # left to the validation, which names it
            continue
        same = held.get(item.get("code"))
        if same is None:
            into.append({**item, "layer": layer} if part == "lists" else item)
            continue
        mine = {k: v for k, v in item.items() if k != "layer"}
        if mine != {k: v for k, v in same.items() if k != "layer"}:
            raise CatalogError(
                f"invalid catalogue: supplement {layer!r} redefines the {part[:-1]} "
                f"{item.get('code')!r}; {part} are shared by every region, so a supplement "
                f"gives its own {part[:-1]} a new code")
