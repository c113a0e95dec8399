"""The measure catalogue (联合奖惩措施清单, DESIGN §6, §9.4b): lists, measures, named
scenarios and layers (the national base and provincial / city supplements).

Codes are open (``_codes``) and unknown fields are kept and ignored, so a catalogue
written for a newer version still loads: a measure whose effect or target this version
cannot apply is kept and reported (:meth:`Catalog.unsupported`), never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from credit_check._catalog_layers import layer_problems
from credit_check._codes import (
    Effect,
    EffectCode,
    LayerCode,
    ListKind,
    Scenario,
    ScenarioCode,
    Target,
    TargetCode,
    covers,
    region_prefix,
)
from credit_check._exceptions import CatalogError

Text = Annotated[str, Field(max_length=512)]


class ListDefinition(BaseModel):
    """A list of the catalogue: its code, kind and objection behaviour."""

    model_config = ConfigDict(frozen=True, extra="allow")

    code: str = Field(min_length=1, max_length=128)
    kind: ListKind
    name: str = Field(min_length=1, max_length=256)
    suspend_on_objection: bool = True
    layer: str | None = Field(default=None, max_length=64)  # the layer that introduced it


class ScenarioDefinition(BaseModel):
    """A scenario the catalogue names (``scenarios: [{code, name_zh, name_en}]``)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    code: ScenarioCode
    name_zh: str = Field(min_length=1, max_length=128)
    name_en: str = Field(default="", max_length=128)


class Layer(BaseModel):
    """One layer of a catalogue: the national base (no region) or a supplement for a
    province (``21``), a city (``2109``) or a county (six digits), with its provenance."""

    model_config = ConfigDict(frozen=True, extra="allow")

    code: LayerCode
    region: Annotated[str, AfterValidator(region_prefix)] | None = None
    name: str = Field(min_length=1, max_length=256)
    source_document: str = Field(min_length=1, max_length=512)
    issuing_body: str = Field(min_length=1, max_length=256)

    @property
    def level(self) -> str:
        """``national``, ``provincial``, ``city`` or ``county``."""
        return {None: "national", 2: "provincial", 4: "city"}.get(
            len(self.region) if self.region else None, "county")


class Measure(BaseModel):
    """One measure of the joint reward and punishment catalogue (联合奖惩措施清单).

    Attributes beyond DESIGN §6 (catalogue schema 2): ``layer`` (the supplement it
    belongs to; None: the national base), ``grounds`` (实施事由), ``evidence`` (证据材料),
    ``initiating_department`` (发起部门), ``period_months`` (the punishment period the
    basis sets, shown with the measure) and ``via_roles`` (see :attr:`effective_via`).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    code: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=512)
    effect: EffectCode
    list_codes: list[str] = Field(default_factory=list)
    scenarios: list[ScenarioCode] = Field(min_length=1)
    target: TargetCode = Target.SUBJECT
    legal_basis: str = Field(min_length=1, max_length=1024)
    implementing_department: str = Field(min_length=1, max_length=256)
    params: dict[str, Any] = Field(default_factory=dict)
    layer: str | None = Field(default=None, max_length=64)
    grounds: str | None = Field(default=None, max_length=2048)
    evidence: list[Text] = Field(default_factory=list, max_length=50)
    initiating_department: str | None = Field(default=None, max_length=256)
    period_months: int | None = Field(default=None, ge=1, le=1200)
    via_roles: list[TargetCode] | None = Field(default=None, max_length=20)

    @property
    def clean_years(self) -> int | None:
        """Years of clean record that grant this measure without a red entry, if any."""
        value = self.params.get("clean_years")
        return int(value) if value is not None else None

    @property
    def problem(self) -> str | None:
        """Why this version cannot apply the measure (an unknown effect or target), or
        None when it can."""
        if not isinstance(self.effect, Effect):
            return f"unknown effect {self.effect!r}"
        if not isinstance(self.target, Target):
            return f"unknown target {self.target!r}"
        return None

    @property
    def effective_via(self) -> tuple[str, ...]:
        """The roles through which an organisation's listing reaches the target person: a
        person who holds one of them in a listed organisation is hit as if listed. Without
        ``via_roles``, a measure on the legal representative keeps the schema-1 meaning
        (the organisations that person represents count); any other, none."""
        if self.via_roles is not None:
            return tuple(self.via_roles)
        return (Target.LEGAL_REPRESENTATIVE,) if self.target is Target.LEGAL_REPRESENTATIVE \
            else ()


class Catalog(BaseModel):
    """A versioned measure catalogue: lists, the measures they trigger, the scenarios it
    names and its layers. Unknown fields anywhere are kept and ignored."""

    model_config = ConfigDict(frozen=True, extra="allow")

    version: str = Field(min_length=1, max_length=64)
    lists: list[ListDefinition]
    measures: list[Measure]
    scenarios: list[ScenarioDefinition] = Field(default_factory=list)
    layers: list[Layer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_references(self) -> Catalog:
        kinds: dict[str, ListKind] = {}
        for item in self.lists:
            if item.code in kinds:
                raise ValueError(f"list {item.code!r} is defined twice")
            kinds[item.code] = item.kind
        named: set[str] = set()
        for s in self.scenarios:
            if s.code in named:
                raise ValueError(f"scenario {s.code!r} is named twice")
            named.add(s.code)
        layers: dict[str, Layer] = {}
        regions: dict[str | None, str] = {}
        for layer in self.layers:
            if layer.code in layers:
                raise ValueError(f"layer {layer.code!r} is defined twice")
            if layer.region in regions:
                raise ValueError(
                    f"layers {regions[layer.region]!r} and {layer.code!r} are both for "
                    + (f"region {layer.region}" if layer.region else "the whole country")
                    + ": give one layer per region")
            layers[layer.code], regions[layer.region] = layer, layer.code
        seen: set[tuple[str | None, str]] = set()
        for m in self.measures:
            if m.layer is not None and m.layer not in layers:
                raise ValueError(f"measure {m.code!r}: layer {m.layer!r} is not one of the "
                                 "catalogue's layers")
            mine = layers.get(m.layer) if m.layer is not None else None
            key = (mine.region if mine is not None else None, m.code)
            if key in seen:
                raise ValueError(f"measure {m.code!r} is defined twice"
                                 + (f" in the layer {m.layer!r}" if m.layer else ""))
            seen.add(key)
            _check_measure(m, kinds)
        for problem in layer_problems(self):
            raise ValueError(problem)
        return self

    @classmethod
    def load(cls, data: Any) -> Catalog:
        """Validate a catalogue from parsed JSON.

        Raises:
            CatalogError: naming the measure (or list, or layer) and the field that is
                wrong, or the supplement measure that would weaken a base measure.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise CatalogError(describe_validation_error(exc, data, "catalogue")) from None

    def list_definition(self, code: str) -> ListDefinition | None:
        """The list with ``code``, or None when the catalogue does not know it."""
        for item in self.lists:
            if item.code == code:
                return item
        return None

    def layer_of(self, measure: Measure) -> Layer | None:
        """The layer a measure belongs to (None: the national base without provenance)."""
        for layer in self.layers:
            if layer.code == measure.layer:
                return layer
        return None

    def base_layer(self) -> Layer | None:
        """The national layer, when the catalogue gives its provenance."""
        return next((layer for layer in self.layers if layer.region is None), None)

    def scenario_codes(self) -> frozenset[str]:
        """Every scenario this catalogue knows: the known set, those it names, and those
        its measures use."""
        return frozenset({*Scenario, *(s.code for s in self.scenarios),
                          *(c for m in self.measures for c in m.scenarios)})

    def scenario_name(self, code: str) -> str:
        """A scenario's Chinese name as the catalogue gives it (else the code)."""
        return next((s.name_zh for s in self.scenarios if s.code == code), code)

    def measures_for(self, scenario: str, region: str | None) -> list[Measure]:
        """The measures that apply to a case of ``scenario`` in ``region``: the national
        base and the supplements covering the region; where a supplement redefines a base
        measure (stricter, as validated) its version replaces the base's."""
        chosen: dict[str, tuple[int, Measure]] = {}
        for m in self.measures:
            if scenario not in m.scenarios:
                continue
            layer = self.layer_of(m) if m.layer is not None else None
            prefix = layer.region if layer is not None else None
            if not covers(prefix, region):
                continue
            depth = len(prefix) if prefix else 0
            held = chosen.get(m.code)
            if held is None or depth > held[0]:
                chosen[m.code] = (depth, m)
        return [m for _, m in chosen.values()]

    def unsupported(self) -> list[tuple[Measure, str]]:
        """The measures this version cannot apply, each with the reason."""
        return [(m, p) for m in self.measures if (p := m.problem) is not None]


def _check_measure(m: Measure, kinds: dict[str, ListKind]) -> None:
    for code in m.list_codes:
        if code not in kinds:
            raise ValueError(f"measure {m.code!r}: list_codes names unknown list {code!r}")
        if not isinstance(m.effect, Effect):
            continue  # an effect of a newer version: its lists are its own business
        reward = kinds[code] is ListKind.RED
        if reward != (m.effect is Effect.GREEN_CHANNEL):
            raise ValueError(
                f"measure {m.code!r}: effect {m.effect!r} cannot be triggered "
                f"by the {kinds[code].value} list {code!r}"
            )
    if not m.list_codes and m.clean_years is None:
        raise ValueError(f"measure {m.code!r}: list_codes is empty and params has no clean_years")
    if m.clean_years is not None and m.effect is not Effect.GREEN_CHANNEL:
        raise ValueError(f"measure {m.code!r}: params.clean_years needs green_channel")
    if m.effect is Effect.GREEN_CHANNEL and m.target is not Target.SUBJECT:
        raise ValueError(f"measure {m.code!r}: a reward targets the subject itself")
    if m.via_roles is not None and Target.SUBJECT in m.via_roles:
        raise ValueError(f"measure {m.code!r}: via_roles names roles a person holds in an "
                         "organisation, not 'subject'")


def describe_validation_error(exc: ValidationError, data: Any, what: str) -> str:
    """A one-paragraph message naming each bad field, with the measure code where known."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc) or what
        if len(loc) >= 2 and loc[0] in ("measures", "lists", "layers", "scenarios") \
                and isinstance(loc[1], int):
            try:
                code = data[loc[0]][loc[1]].get("code")
            except (KeyError, IndexError, TypeError, AttributeError):
                code = None
            if code:
                where = f"{str(loc[0])[:-1]} {code!r} field " + ".".join(str(p) for p in loc[2:])
        parts.append(f"{where}: {err['msg']}")
    return f"invalid {what}: " + "; ".join(parts)


def known_scenarios(catalogs: Sequence[Catalog | None]) -> frozenset[str]:
    """The scenarios any of ``catalogs`` knows (the known set when there are none)."""
    out: frozenset[str] = frozenset(Scenario)
    for c in catalogs:
        if c is not None:
            out |= c.scenario_codes()
    return out
