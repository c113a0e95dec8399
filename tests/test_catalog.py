"""The catalogue: open codes, named scenarios, layers and the never-weaker rule of a
supplement, merging supplement documents, and the demo catalogue's citations."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from credit_check import Catalog, CatalogError, Effect, Scenario, Target
from credit_check._catalog_layers import merge, weakening
from credit_check._server._catalog_forms import required_schema, wave1_form
from credit_check._server._demo import demo_catalog

BLACK = ["court.judgment_defaulter", "tax.major_violation"]
LIAONING = {"code": "liaoning", "region": "21", "name": "辽宁省补充清单",
            "source_document": "辽政办发〔2022〕5号", "issuing_body": "辽宁省人民政府办公厅"}
FUXIN = {"code": "fuxin", "region": "210900", "name": "阜新市补充清单",
         "source_document": "阜委办发【2019】69号", "issuing_body": "中共阜新市委办公室"}


def base() -> dict[str, Any]:
    """A small national catalogue."""
    return {
        "version": "t-1",
        "lists": [{"code": "court.judgment_defaulter", "kind": "black", "name": "失信被执行人",
                   "suspend_on_objection": False},
                  {"code": "tax.major_violation", "kind": "black", "name": "重大税收违法"},
                  {"code": "tax.a_grade", "kind": "red", "name": "A级纳税人"}],
        "measures": [
            {"code": "M-1", "name": "限制参加政府采购", "effect": "review", "list_codes": BLACK,
             "scenarios": ["procurement", "bidding"], "legal_basis": "示例依据",
             "implementing_department": "财政部门", "period_months": 24},
            {"code": "R-1", "name": "绿色通道", "effect": "green_channel",
             "list_codes": ["tax.a_grade"], "scenarios": ["licensing"], "legal_basis": "示例依据",
             "implementing_department": "审批部门", "params": {"clean_years": 3,
                                                            "commitment_days": 30}},
        ],
    }


def supplement(layer: dict[str, Any], *measures: dict[str, Any], **parts: Any) -> dict[str, Any]:
    return {"layer": layer, "measures": list(measures), **parts}


def measure(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(m for m in data["measures"] if m["code"] == code)


# -- open codes -----------------------------------------------------------------------------


def test_known_codes_are_the_enum_members_and_others_stay_strings() -> None:
    data = base()
    data["measures"][0]["scenarios"].append("franchise")
    m = Catalog.load(data).measures[0]
    assert m.scenarios[0] is Scenario.PROCUREMENT and m.effect is Effect.REVIEW
    assert m.target is Target.SUBJECT
    assert m.scenarios[2] == "franchise" and not isinstance(m.scenarios[2], Scenario)


def test_named_scenarios_give_their_names_and_may_not_repeat() -> None:
    data = base()
    data["scenarios"] = [{"code": "franchise", "name_zh": "特许经营", "name_en": "franchise"}]
    catalog = Catalog.load(data)
    assert catalog.scenario_name("franchise") == "特许经营"
    assert "franchise" in catalog.scenario_codes()
    data["scenarios"].append(dict(data["scenarios"][0]))
    with pytest.raises(CatalogError, match="scenario 'franchise' is named twice"):
        Catalog.load(data)


def test_an_unknown_effect_on_a_red_list_is_kept_without_the_reward_check() -> None:
    data = base()
    measure(data, "R-1")["effect"] = "priority_service"
    measure(data, "R-1")["params"] = {}
    catalog = Catalog.load(data)
    assert [m.code for m, _ in catalog.unsupported()] == ["R-1"]


def test_via_roles_never_name_the_subject() -> None:
    data = base()
    measure(data, "M-1")["via_roles"] = ["subject"]
    with pytest.raises(CatalogError, match="via_roles"):
        Catalog.load(data)


def test_a_legal_representative_measure_keeps_its_schema1_reach() -> None:
    data = base()
    data["measures"].append({**measure(data, "M-1"), "code": "M-2",
                             "target": "legal_representative"})
    catalog = Catalog.load(data)
    assert catalog.measures[0].effective_via == ()
    assert catalog.measures[2].effective_via == (Target.LEGAL_REPRESENTATIVE,)
    data["measures"][2]["via_roles"] = []
    assert Catalog.load(data).measures[2].effective_via == ()


# -- layers ---------------------------------------------------------------------------------


def test_a_supplement_measure_applies_in_its_region_and_below_only() -> None:
    extra = {**measure(base(), "M-1"), "code": "L-1", "scenarios": ["franchise"]}
    catalog = Catalog.load(merge(base(), [supplement(LIAONING, extra)]))
    assert [m.code for m in catalog.measures_for("franchise", "210902")] == ["L-1"]
    assert [m.code for m in catalog.measures_for("franchise", "210000")] == ["L-1"]
    assert catalog.measures_for("franchise", "350100") == []
    assert catalog.measures_for("franchise", None) == []
    (layer,) = catalog.layers
    assert (layer.level, catalog.measures[-1].layer) == ("provincial", "liaoning")


def test_a_stricter_redefinition_replaces_the_base_where_it_applies() -> None:
    stricter = {**measure(base(), "M-1"), "effect": "deny", "scenarios": [
        "procurement", "bidding", "public_resource"], "period_months": 36}
    catalog = Catalog.load(merge(base(), [supplement(LIAONING, stricter)]))
    (here,) = catalog.measures_for("procurement", "210102")
    (there,) = catalog.measures_for("procurement", "350100")
    assert (here.effect, here.layer) == (Effect.DENY, "liaoning")
    assert (there.effect, there.layer) == (Effect.REVIEW, None)


def test_a_city_supplement_builds_on_its_province_and_may_not_weaken_it() -> None:
    stricter = {**measure(base(), "M-1"), "effect": "deny"}
    region = {"code": "fuxin", **{k: v for k, v in FUXIN.items() if k != "code"}}
    city = {**stricter, "effect": "review"}  # milder than the province's, as mild as the base
    with pytest.raises(CatalogError) as caught:
        Catalog.load(merge(base(), [supplement(LIAONING, stricter), supplement(region, city)]))
    text = str(caught.value)
    assert "'M-1' of the supplement 'fuxin'" in text and "the supplement 'liaoning'" in text
    assert "milder" in text
    catalog = Catalog.load(merge(base(), [supplement(LIAONING, stricter),
                                          supplement(region, stricter)]))
    assert catalog.layers[1].region == "2109"  # 210900 is the city


WEAKER = [
    ({"effect": "restrict"}, "milder"),
    ({"list_codes": ["tax.major_violation"]}, "drops the lists 'court.judgment_defaulter'"),
    ({"scenarios": ["procurement"]}, "drops the scenarios 'bidding'"),
    ({"target": "legal_representative"}, "targets"),
    ({"period_months": 12}, "shorter"),
    ({"period_months": None}, "shorter"),
]


@pytest.mark.parametrize(("change", "why"), WEAKER)
def test_a_supplement_that_weakens_a_punishment_is_refused_with_the_reason(
    change: dict[str, Any], why: str,
) -> None:
    weaker = {**measure(base(), "M-1"), **change}
    with pytest.raises(CatalogError, match=re.escape(why)) as caught:
        Catalog.load(merge(base(), [supplement(LIAONING, weaker)]))
    assert "would weaken the measure of the national base" in str(caught.value)


@pytest.mark.parametrize(("change", "why"), [
    ({"list_codes": ["tax.a_grade", "customs"]}, "more lists"),
    ({"scenarios": ["licensing", "qualification"]}, "more scenarios"),
    ({"params": {"clean_years": 2, "commitment_days": 30}}, "after 2 clean years"),
    ({"params": {"clean_years": 3, "commitment_days": 60}}, "60 days"),
])
def test_a_supplement_that_grants_a_reward_more_widely_is_refused(
    change: dict[str, Any], why: str,
) -> None:
    data = base()
    data["lists"].append({"code": "customs", "kind": "red", "name": "海关高级认证"})
    wider = {**measure(data, "R-1"), **change}
    with pytest.raises(CatalogError, match=why):
        Catalog.load(merge(data, [supplement(LIAONING, wider)]))
    narrower = {**measure(data, "R-1"), "params": {"clean_years": 5, "commitment_days": 10}}
    assert Catalog.load(merge(data, [supplement(LIAONING, narrower)]))


def test_weakening_between_unknown_effects_needs_the_same_effect() -> None:
    data = base()
    measure(data, "M-1")["effect"] = "suspend_license"
    m = Catalog.load(data).measures[0]
    same = m.model_copy(update={"scenarios": [*m.scenarios, "franchise"]})
    other = m.model_copy(update={"effect": "warn"})
    assert weakening(m, same) is None
    assert weakening(m, other) == "its effect 'warn' is not the base's 'suspend_license'"


def test_layers_are_one_per_region_and_measures_name_defined_layers() -> None:
    data = merge(base(), [supplement(LIAONING), supplement({**LIAONING, "code": "ln2"})])
    with pytest.raises(CatalogError, match="both for region 21"):
        Catalog.load(data)
    data = base()
    measure(data, "M-1")["layer"] = "nowhere"
    with pytest.raises(CatalogError, match="layer 'nowhere' is not one of"):
        Catalog.load(data)
    with pytest.raises(CatalogError, match="region"):
        Catalog.load(merge(base(), [supplement({**LIAONING, "region": "2A"})]))


def test_a_measure_may_be_defined_once_per_layer() -> None:
    twice = merge(base(), [supplement(LIAONING, measure(base(), "M-1"),
                                      measure(base(), "M-1"))])
    with pytest.raises(CatalogError, match="'M-1' is defined twice in the layer 'liaoning'"):
        Catalog.load(twice)


# -- merging supplement documents --------------------------------------------------------------


def test_merge_joins_lists_and_scenarios_and_tags_the_measures() -> None:
    new_list = {"code": "ln.fraud", "kind": "black", "name": "辽宁省严重失信名单"}
    extra = {**measure(base(), "M-1"), "code": "L-1", "list_codes": ["ln.fraud"]}
    sup = supplement(LIAONING, extra, lists=[new_list],
                     scenarios=[{"code": "franchise", "name_zh": "特许经营"}])
    merged = merge(base(), [sup])
    assert merged["lists"][-1] == {**new_list, "layer": "liaoning"}
    assert merged["scenarios"] == [{"code": "franchise", "name_zh": "特许经营"}]
    assert measure(merged, "L-1")["layer"] == "liaoning"
    assert base()["measures"] == merge(base(), [])["measures"]  # the base is not changed


def test_merge_refuses_a_supplement_redefining_a_shared_list_or_a_malformed_one() -> None:
    changed = {**base()["lists"][0], "suspend_on_objection": True}
    with pytest.raises(CatalogError, match=r"redefines the list .court\.judgment_defaulter."):
        merge(base(), [supplement(LIAONING, lists=[changed])])
    assert merge(base(), [supplement(LIAONING, lists=[base()["lists"][0]])])  # the same: fine
    for bad, needle in (({"measures": []}, "needs a 'layer'"),
                        ({"layer": LIAONING, "notes": "x"}, "unknown parts 'notes'"),
                        ({"layer": LIAONING, "measures": {}}, "measures must be a list")):
        with pytest.raises(CatalogError, match=needle):
            merge(base(), [bad])


# -- schema negotiation --------------------------------------------------------------------


def wave1_base() -> dict[str, Any]:
    data = base()
    del measure(data, "M-1")["period_months"]
    return data


def test_a_catalogue_of_wave1_shapes_needs_schema_1_and_anything_more_schema_2() -> None:
    assert required_schema(Catalog.load(wave1_base())) == 1
    assert required_schema(Catalog.load(base())) == 2  # period_months is schema 2
    for change in (lambda d: d.update(notes="x"),
                   lambda d: d["measures"][0].update(grounds="实施事由"),
                   lambda d: d["measures"][0]["scenarios"].append("franchise"),
                   lambda d: d.update(scenarios=[{"code": "x", "name_zh": "某"}])):
        data = wave1_base()
        change(data)
        assert required_schema(Catalog.load(data)) == 2


def test_the_wave1_form_keeps_what_a_wave1_client_can_apply_exactly() -> None:
    catalog = Catalog.load(demo_catalog())
    form = wave1_form(catalog)
    assert Catalog.load(form).version == catalog.version
    codes = [m["code"] for m in form["measures"]]
    assert codes == ["P-001", "P-002", "P-003", "P-004", "P-005", "P-006", "R-001"]
    p005 = measure(form, "P-005")
    assert p005["scenarios"] == ["licensing"]  # the national one, not Liaoning's


# -- the demo catalogue's citations (checked against the seeds) ------------------------------

# Document numbers the seeds give with their titles (seed 002, 003, 001).
TITLES = {
    "国发〔2016〕33号": "国务院关于建立完善守信联合激励和失信联合惩戒制度加快推进社会诚信建设的指导意见",
    "国办发〔2019〕35号": "国务院办公厅关于加快推进社会信用体系建设构建以信用为基础的新型监管机制的指导意见",
    "国办发〔2020〕49号": "国务院办公厅关于进一步完善失信约束制度构建诚信建设长效机制的指导意见",
    "辽政办发〔2022〕5号": "辽宁省“十四五”社会信用体系建设规划",
    "阜委办发【2019】69号": "阜新市守信联合褒奖失信联合惩戒专项行动方案",
}
_CITED = re.compile(r"《([^》]+)》（([^）]+号)）")


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def test_every_document_the_demo_catalogue_cites_has_its_own_title() -> None:
    text = "\n".join(_texts(demo_catalog()))
    cited = _CITED.findall(text)
    assert len(cited) >= 10
    for title, number in cited:
        if number in TITLES:
            assert title == TITLES[number], (number, title)
    assert "国办发〔2020〕42号" not in text  # the number once paired with 49's title
    numbers = {n for _, n in cited}
    assert {"国办发〔2020〕49号", "辽政办发〔2022〕5号", "阜委办发【2019】69号"} <= numbers


def test_the_demo_catalogue_has_a_supplement_a_new_scenario_and_every_new_target() -> None:
    catalog = Catalog.load(demo_catalog())
    assert {layer.level for layer in catalog.layers} == {"national", "provincial", "city"}
    new = {s.code for s in catalog.scenarios} - set(Scenario)
    assert "franchise" in new
    assert {t for t in Target} <= {m.target for m in catalog.measures}
    assert catalog.unsupported() == []
    assert all(m.grounds and m.evidence for m in catalog.measures)
    assert any(m.period_months for m in catalog.measures)
    raw = json.dumps(demo_catalog(), ensure_ascii=False)
    assert copy.deepcopy(json.loads(raw)) == demo_catalog()
