"""The rulebook on real catalogues: measures this version cannot apply (rule 11), every
related person's role, organisations reached through a person's role, the region's
supplements, a scenario nobody knows, and the catalogue's fields in the reasons."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from credit_check import Catalog, ListEntry, Outcome, Subject, SubjectKind, Transaction
from credit_check._catalog_layers import merge
from credit_check._ids import mask_id
from credit_check._models import CST, Withheld
from credit_check._rules import PersonEntries, decide, withheld_targets

NOW = dt.datetime(2026, 3, 1, 10, 0, tzinfo=CST)
ORG = "91350100M000100Y43"
OTHER_ORG = "91440300MA5FAAAA7M"
PERSON = "11010519491231002X"
COURT, TAX, RED = "court.judgment_defaulter", "tax.major_violation", "tax.a_grade"


def catalog(*measures: dict[str, Any], **extra: Any) -> Catalog:
    data: dict[str, Any] = {
        "version": "rc-1",
        "lists": [{"code": COURT, "kind": "black", "name": "失信被执行人",
                   "suspend_on_objection": False},
                  {"code": TAX, "kind": "black", "name": "重大税收违法失信主体"},
                  {"code": RED, "kind": "red", "name": "纳税信用A级"}],
        "measures": [{"name": "示例措施", "legal_basis": "示例依据",
                      "implementing_department": "示例部门", "list_codes": [COURT, TAX],
                      "scenarios": ["procurement"], **m} for m in measures],
        **extra,
    }
    return Catalog.load(data)


def entry(subject_id: str = ORG, list_code: str = COURT, **kw: Any) -> ListEntry:
    kind = SubjectKind.PERSON if len(subject_id) == 18 and subject_id[:17].isdigit() \
        else SubjectKind.ORGANIZATION
    fields: dict[str, Any] = {
        "entry_id": f"{list_code}:{subject_id}:{kw.get('status', 'active')}",
        "list_code": list_code, "list_kind": "red" if list_code == RED else "black",
        "subject_id": subject_id, "subject_kind": kind, "issuing_department": "某发布部门",
        "basis_document": "（2025）示1号", "effective_from": "2025-01-01"}
    fields.update(kw)
    return ListEntry(**fields)


def run(cat: Catalog, scenario: str = "procurement", region: str | None = None,
        subject: Subject | None = None, **kw: Any) -> Any:
    return decide(subject=subject or Subject.organization(ORG), catalog=cat, now=NOW,
                  transaction=Transaction(scenario=scenario, region=region),
                  decision_id="D-1", **kw)


def codes(d: Any) -> list[str]:
    return [m.code for m in d.measures]


# -- measures this version cannot apply (rule 11) -----------------------------------------


def test_an_unknown_effect_matching_a_counting_entry_is_review_and_degraded() -> None:
    cat = catalog({"code": "X", "effect": "suspend_license"})
    d = run(cat, entries=[entry()])
    assert (d.outcome, d.degraded, d.measures) == (Outcome.REVIEW, True, [])
    assert any("X" in r and "suspend_license" in r and "Upgrade credit-check" in r
               for r in d.reasons)
    assert run(cat, entries=[entry()], fallback=Outcome.DENY).outcome is Outcome.DENY


def test_an_unknown_effect_never_lowers_a_stricter_known_measure() -> None:
    cat = catalog({"code": "X", "effect": "suspend_license"}, {"code": "K", "effect": "deny"})
    d = run(cat, entries=[entry()])
    assert (d.outcome, codes(d), d.degraded) == (Outcome.DENY, ["K"], True)


@pytest.mark.parametrize("entries", [
    [],  # nothing listed
    [entry(list_code=RED)],  # a red list: an unknown reward is simply not granted
    [entry(TAX and ORG, list_code=TAX, status="objection_pending")],  # suspended
    [entry(status="repaired")],  # ignored entirely
])
def test_an_unknown_effect_that_matches_nothing_changes_nothing(entries: list[ListEntry]) -> None:
    cat = catalog({"code": "X", "effect": "suspend_license", "list_codes": [COURT, TAX, RED]})
    d = run(cat, entries=entries)
    assert (d.outcome, d.degraded) == (Outcome.ALLOW, False)


def test_an_unknown_target_may_concern_anybody_the_answers_show() -> None:
    cat = catalog({"code": "X", "effect": "review", "target": "actual_controller"})
    person = PersonEntries("principal", Subject.person(PERSON), [entry(PERSON)])
    d = run(cat, persons=[person])
    assert (d.outcome, d.degraded) == (Outcome.REVIEW, True)
    assert any("actual_controller" in r for r in d.reasons)
    assert withheld_targets(cat, "procurement", [Withheld(role="director")]) == (
        Withheld(role="director"),)


def test_no_reward_while_a_measure_cannot_be_judged() -> None:
    cat = catalog({"code": "X", "effect": "suspend_license"},
                  {"code": "R", "effect": "green_channel", "list_codes": [RED]})
    assert codes(run(cat, entries=[entry(list_code=RED)])) == ["R"]
    d = run(cat, entries=[entry(list_code=RED)],
            persons=[PersonEntries("director", None, [], [(entry(OTHER_ORG), "director")])])
    assert d.outcome is Outcome.GREEN_CHANNEL  # X (on the subject) matches nothing
    d = run(cat, entries=[entry(list_code=RED), entry()])
    assert (d.outcome, codes(d)) == (Outcome.REVIEW, [])


# -- related persons ------------------------------------------------------------------------


def test_a_measure_on_a_role_applies_to_that_roles_persons_only() -> None:
    cat = catalog({"code": "D", "effect": "deny", "target": "director"})
    listed = entry(PERSON)
    director = PersonEntries("director", Subject.person(PERSON), [listed])
    d = run(cat, persons=[director])
    assert (d.outcome, codes(d), d.matches) == (Outcome.DENY, ["D"], [listed])
    assert any(mask_id(PERSON) in r and "董事" in r for r in d.reasons)
    assert all(PERSON not in r for r in d.reasons)
    shareholder = PersonEntries("shareholder", Subject.person(PERSON), [listed])
    assert run(cat, persons=[shareholder]).outcome is Outcome.ALLOW


def test_an_organisation_reaches_a_person_only_through_the_measures_via_roles() -> None:
    cat = catalog({"code": "D", "effect": "deny", "target": "director",
                   "via_roles": ["director", "principal"]})
    listed_org = entry(OTHER_ORG)
    for role, outcome in (("director", Outcome.DENY), ("principal", Outcome.DENY),
                          ("shareholder", Outcome.ALLOW)):
        p = PersonEntries("director", Subject.person(PERSON), [], [(listed_org, role)])
        d = run(cat, persons=[p])
        assert d.outcome is outcome, role
        if outcome is Outcome.DENY:
            assert d.matches == [listed_org]
            assert any(OTHER_ORG in r and mask_id(PERSON) in r for r in d.reasons)
    no_via = catalog({"code": "D", "effect": "deny", "target": "director"})
    p = PersonEntries("director", Subject.person(PERSON), [], [(listed_org, "director")])
    assert run(no_via, persons=[p]).outcome is Outcome.ALLOW


def test_a_person_applying_is_reached_through_an_organisation_by_via_roles() -> None:
    cat = catalog({"code": "H", "effect": "deny", "scenarios": ["honor"],
                   "via_roles": ["director"]})
    person = Subject.person(PERSON)
    d = run(cat, "honor", subject=person, subject_via=[(entry(OTHER_ORG), "director")])
    assert (d.outcome, codes(d)) == (Outcome.DENY, ["H"])
    assert any("主体是" in r and OTHER_ORG in r for r in d.reasons)
    d = run(cat, "honor", subject=person, subject_via=[(entry(OTHER_ORG), "shareholder")])
    assert d.outcome is Outcome.ALLOW


# -- layers and regions ------------------------------------------------------------------------


LIAONING = {"code": "liaoning", "region": "21", "name": "辽宁省补充清单（示例）",
            "source_document": "《辽宁省“十四五”社会信用体系建设规划》（辽政办发〔2022〕5号）",
            "issuing_body": "辽宁省人民政府办公厅"}


def layered() -> Catalog:
    base: dict[str, Any] = catalog({"code": "M", "effect": "review"}).model_dump(mode="json")
    stricter = {**base["measures"][0], "effect": "deny"}
    return Catalog.load(merge(base, [{"layer": LIAONING, "measures": [stricter]}]))


@pytest.mark.parametrize(("region", "outcome"), [
    (None, Outcome.REVIEW), ("350100", Outcome.REVIEW), ("210102", Outcome.DENY)])
def test_the_region_selects_the_supplement(region: str | None, outcome: Outcome) -> None:
    d = run(layered(), region=region, entries=[entry()])
    assert d.outcome is outcome and codes(d) == ["M"]
    if outcome is Outcome.DENY:
        assert d.measures[0].layer == "liaoning"
        assert any("辽宁省补充清单（示例）" in r and "辽宁省人民政府办公厅" in r
                   and "辽政办发〔2022〕5号" in r and "provincial" in r for r in d.reasons)


# -- scenarios -------------------------------------------------------------------------------


def test_a_catalogue_scenario_is_decided_like_any_other() -> None:
    cat = catalog({"code": "F", "effect": "deny", "scenarios": ["franchise"]},
                  scenarios=[{"code": "franchise", "name_zh": "特许经营"}])
    assert run(cat, "franchise", entries=[entry()]).outcome is Outcome.DENY
    assert (run(cat, "franchise").outcome, run(cat, "franchise").degraded) == (
        Outcome.ALLOW, False)


@pytest.mark.parametrize("fallback", [Outcome.ALLOW, Outcome.REVIEW, Outcome.DENY])
def test_a_scenario_nobody_knows_gets_the_fallback_at_least_review(fallback: Outcome) -> None:
    d = run(catalog({"code": "M", "effect": "deny"}), "procuremnt", fallback=fallback,
            entries=[entry()])
    assert d.outcome is Outcome.most_severe((fallback, Outcome.REVIEW))
    assert d.degraded and d.measures == [] and "procuremnt" in d.reasons[0]


# -- the catalogue's fields ---------------------------------------------------------------------


def test_grounds_evidence_initiator_and_period_are_in_the_decision_and_reasons() -> None:
    cat = catalog({"code": "M", "effect": "deny", "grounds": "严重失信主体参与政府采购",
                   "evidence": ["法院失信被执行人名单信息", "认定文书"],
                   "initiating_department": "人民法院", "period_months": 36})
    d = run(cat, entries=[entry()])
    (m,) = d.measures
    assert (m.grounds, m.evidence, m.initiating_department, m.period_months) == (
        "严重失信主体参与政府采购", ["法院失信被执行人名单信息", "认定文书"], "人民法院", 36)
    (reason,) = [r for r in d.reasons if r.startswith("对主体适用措施 M")]
    for text in ("实施事由：严重失信主体参与政府采购", "证据材料：法院失信被执行人名单信息、认定文书",
                 "发起部门：人民法院", "惩戒期限：36个月", "grounds:", "period 36 months",
                 "initiated by 人民法院"):
        assert text in reason
    assert d.public_dict()["measures"][0]["period_months"] == 36
