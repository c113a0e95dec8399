"""Domain models: the measure catalogue, list entries and outcomes."""

from __future__ import annotations

import copy
import datetime as dt
import json
from importlib import resources
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from credit_check import (
    Catalog,
    CatalogError,
    Decision,
    Effect,
    EntryStatus,
    ListEntry,
    ListKind,
    Outcome,
    Scenario,
    Subject,
    SubjectKind,
    Target,
    Transaction,
)
from credit_check._models import CST, trusted

UTC = dt.UTC


def demo_data() -> dict[str, Any]:
    text = resources.files("credit_check.data").joinpath("demo_catalog.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def measure(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(m for m in data["measures"] if m["code"] == code)


# --- the shipped demo catalogue --------------------------------------------------


def test_demo_catalogue_loads() -> None:
    catalog = Catalog.load(demo_data())
    assert catalog.version == "2026.1"


def test_demo_catalogue_has_red_black_and_watch_lists() -> None:
    catalog = Catalog.load(demo_data())
    kinds = {item.code: item.kind for item in catalog.lists}
    assert kinds["court.judgment_defaulter"] is ListKind.BLACK
    assert kinds["tax.major_violation"] is ListKind.BLACK
    assert kinds["market.abnormal_operation"] is ListKind.WATCH
    assert kinds["tax.a_grade"] is ListKind.RED
    assert set(kinds.values()) == set(ListKind)


def test_demo_court_list_is_not_suspended_on_objection_but_others_are() -> None:
    catalog = Catalog.load(demo_data())
    court = catalog.list_definition("court.judgment_defaulter")
    tax = catalog.list_definition("tax.major_violation")
    assert court is not None and court.suspend_on_objection is False
    assert tax is not None and tax.suspend_on_objection is True
    assert catalog.list_definition("no.such.list") is None


def test_demo_catalogue_has_a_measure_of_every_effect_with_legal_basis() -> None:
    catalog = Catalog.load(demo_data())
    assert {m.effect for m in catalog.measures} == set(Effect)
    for m in catalog.measures:
        assert m.legal_basis
        assert m.implementing_department


def test_demo_catalogue_denies_black_listed_bidders_in_procurement_and_bidding() -> None:
    catalog = Catalog.load(demo_data())
    p001 = next(m for m in catalog.measures if m.code == "P-001")
    assert p001.effect is Effect.DENY
    assert set(p001.scenarios) == {Scenario.PROCUREMENT, Scenario.BIDDING}
    assert "court.judgment_defaulter" in p001.list_codes


def test_demo_catalogue_targets_the_legal_representative_for_market_access() -> None:
    catalog = Catalog.load(demo_data())
    p006 = next(m for m in catalog.measures if m.code == "P-006")
    assert p006.target is Target.LEGAL_REPRESENTATIVE
    assert p006.scenarios == [Scenario.MARKET_ACCESS]


def test_demo_catalogue_green_channel_accepts_three_clean_years() -> None:
    catalog = Catalog.load(demo_data())
    r001 = next(m for m in catalog.measures if m.code == "R-001")
    assert r001.effect is Effect.GREEN_CHANNEL
    assert r001.clean_years == 3


# --- a malformed catalogue -------------------------------------------------------


def test_measure_with_unknown_effect_is_rejected_naming_measure_and_field() -> None:
    data = demo_data()
    measure(data, "P-004")["effect"] = "ban"
    with pytest.raises(CatalogError, match=r"measure 'P-004' field effect"):
        Catalog.load(data)


def test_measure_missing_legal_basis_is_rejected_naming_measure_and_field() -> None:
    data = demo_data()
    del measure(data, "P-002")["legal_basis"]
    with pytest.raises(CatalogError) as info:
        Catalog.load(data)
    assert "measure 'P-002' field legal_basis" in str(info.value)


def test_measure_with_unknown_scenario_names_the_measure_and_the_scenario_index() -> None:
    data = demo_data()
    measure(data, "P-001")["scenarios"] = ["procurement", "lottery"]
    with pytest.raises(CatalogError, match=r"measure 'P-001' field scenarios\.1"):
        Catalog.load(data)


def test_measure_with_no_scenario_is_rejected() -> None:
    data = demo_data()
    measure(data, "P-003")["scenarios"] = []
    with pytest.raises(CatalogError, match=r"measure 'P-003' field scenarios"):
        Catalog.load(data)


def test_measure_with_an_unexpected_field_is_rejected_naming_it() -> None:
    data = demo_data()
    measure(data, "P-005")["severity"] = 3
    with pytest.raises(CatalogError, match=r"measure 'P-005' field severity"):
        Catalog.load(data)


def test_list_with_unknown_kind_is_rejected_naming_list_and_field() -> None:
    data = demo_data()
    data["lists"][0]["kind"] = "grey"
    with pytest.raises(CatalogError, match=r"list 'court.judgment_defaulter' field kind"):
        Catalog.load(data)


def test_measure_naming_an_unknown_list_is_rejected() -> None:
    data = demo_data()
    measure(data, "P-001")["list_codes"].append("no.such.list")
    with pytest.raises(CatalogError, match=r"measure 'P-001'.*unknown list 'no.such.list'"):
        Catalog.load(data)


def test_punishment_triggered_by_a_red_list_is_rejected() -> None:
    data = demo_data()
    measure(data, "P-001")["list_codes"].append("tax.a_grade")
    with pytest.raises(CatalogError, match=r"measure 'P-001'.*red list 'tax.a_grade'"):
        Catalog.load(data)


def test_reward_triggered_by_a_black_list_is_rejected() -> None:
    data = demo_data()
    measure(data, "R-001")["list_codes"].append("court.judgment_defaulter")
    with pytest.raises(CatalogError, match=r"measure 'R-001'.*black list"):
        Catalog.load(data)


def test_measure_defined_twice_is_rejected() -> None:
    data = demo_data()
    data["measures"].append(copy.deepcopy(measure(data, "P-001")))
    with pytest.raises(CatalogError, match=r"measure 'P-001' is defined twice"):
        Catalog.load(data)


def test_list_defined_twice_is_rejected() -> None:
    data = demo_data()
    data["lists"].append(copy.deepcopy(data["lists"][0]))
    with pytest.raises(CatalogError, match=r"list 'court.judgment_defaulter' is defined twice"):
        Catalog.load(data)


def test_measure_without_lists_or_clean_years_is_rejected() -> None:
    data = demo_data()
    measure(data, "P-005")["list_codes"] = []
    with pytest.raises(CatalogError, match=r"measure 'P-005': list_codes is empty"):
        Catalog.load(data)


def test_clean_years_on_a_punishment_is_rejected() -> None:
    data = demo_data()
    measure(data, "P-004")["params"] = {"clean_years": 3}
    with pytest.raises(CatalogError, match=r"measure 'P-004': params.clean_years"):
        Catalog.load(data)


def test_reward_targeting_the_legal_representative_is_rejected() -> None:
    data = demo_data()
    measure(data, "R-001")["target"] = "legal_representative"
    with pytest.raises(CatalogError, match=r"measure 'R-001': a reward targets the subject"):
        Catalog.load(data)


def test_catalogue_without_version_is_rejected_naming_the_field() -> None:
    data = demo_data()
    del data["version"]
    with pytest.raises(CatalogError, match=r"version"):
        Catalog.load(data)


def test_catalogue_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Catalog.load({"version": "x"})


# --- list entries and dates ------------------------------------------------------


def entry(**overrides: Any) -> ListEntry:
    fields: dict[str, Any] = {
        "entry_id": "E-1",
        "list_code": "court.judgment_defaulter",
        "list_kind": "black",
        "subject_id": "91110000600037341L",
        "subject_kind": "organization",
        "issuing_department": "北京市高级人民法院",
        "effective_from": "2026-01-01",
    }
    fields.update(overrides)
    return ListEntry.model_validate(fields)


def test_plain_date_means_midnight_china_standard_time() -> None:
    e = entry(effective_from="2026-01-01", effective_until=dt.date(2026, 7, 1))
    assert e.effective_from == dt.datetime(2026, 1, 1, tzinfo=CST)
    assert e.effective_from == dt.datetime(2025, 12, 31, 16, 0, tzinfo=UTC)
    assert e.effective_until == dt.datetime(2026, 6, 30, 16, 0, tzinfo=UTC)
    assert e.effective_from.utcoffset() == dt.timedelta(hours=8)


def test_naive_datetime_is_taken_as_china_standard_time() -> None:
    e = entry(effective_from="2026-01-01T09:30:00", listed_on=dt.datetime(2026, 1, 1, 9, 30))
    assert e.effective_from == dt.datetime(2026, 1, 1, 1, 30, tzinfo=UTC)
    assert e.listed_on == dt.datetime(2026, 1, 1, 1, 30, tzinfo=UTC)


def test_datetime_with_an_offset_keeps_its_offset() -> None:
    e = entry(effective_from="2026-01-01T00:00:00Z")
    assert e.effective_from == dt.datetime(2026, 1, 1, tzinfo=UTC)


def test_entry_starts_counting_at_midnight_beijing_time_of_its_start_date() -> None:
    e = entry(effective_from="2026-01-01")
    assert not e.is_in_period(dt.datetime(2025, 12, 31, 15, 59, 59, tzinfo=UTC))
    assert e.is_in_period(dt.datetime(2025, 12, 31, 16, 0, tzinfo=UTC))


def test_entry_period_end_is_exclusive() -> None:
    e = entry(effective_from="2026-01-01", effective_until="2026-07-01")
    assert e.is_in_period(dt.datetime(2026, 6, 30, 23, 59, 59, tzinfo=CST))
    assert not e.is_in_period(dt.datetime(2026, 7, 1, tzinfo=CST))


def test_entry_without_end_is_open_ended() -> None:
    e = entry(effective_from="2026-01-01")
    assert e.effective_until is None
    assert e.is_in_period(dt.datetime(2099, 1, 1, tzinfo=UTC))


def test_entry_status_defaults_to_active() -> None:
    assert entry().status is EntryStatus.ACTIVE


def test_entry_with_an_impossible_date_is_rejected() -> None:
    with pytest.raises(ValueError):
        entry(effective_from="2026-02-30")


def test_person_entry_masks_the_id_number_in_public_dict_and_repr() -> None:
    e = entry(subject_id="11010519491231002X", subject_kind="person")
    assert e.public_dict()["subject_id"] == "110105********002X"
    assert "11010519491231002X" not in repr(e)


# --- outcomes --------------------------------------------------------------------


def test_outcome_values_are_the_protocol_strings() -> None:
    assert [o.value for o in Outcome] == ["deny", "review", "restrict", "allow", "green_channel"]


@pytest.mark.parametrize("value", ["deny", "review", "restrict", "allow", "green_channel"])
def test_outcome_round_trips_through_its_value(value: str) -> None:
    assert Outcome(value).value == value
    assert Outcome(value) == value


def test_outcomes_are_listed_most_severe_first() -> None:
    severities = [o.severity for o in Outcome]
    assert severities == sorted(severities, reverse=True)


def test_most_severe_outcome_wins_and_none_means_allow() -> None:
    assert Outcome.most_severe([Outcome.ALLOW, Outcome.DENY, Outcome.REVIEW]) is Outcome.DENY
    assert Outcome.most_severe([Outcome.GREEN_CHANNEL, Outcome.RESTRICT]) is Outcome.RESTRICT
    assert Outcome.most_severe([]) is Outcome.ALLOW


# --- models built without validation ---------------------------------------------


def _same_model(made: BaseModel, validated: BaseModel) -> None:
    assert type(made) is type(validated)
    assert made == validated
    assert list(made.__dict__.items()) == list(validated.__dict__.items())
    assert made.model_fields_set == validated.model_fields_set
    assert made.__pydantic_extra__ is None and made.__pydantic_private__ is None
    assert repr(made) == repr(validated)
    assert made.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)


def test_subject_constructors_build_what_validation_builds() -> None:
    """The factories (which validate the id once, themselves) give the very model that
    validating the same fields gives."""
    org, person = "91350100M000100Y43", "11010519491231002X"
    rep = Subject.person(person)
    _same_model(rep, Subject(kind=SubjectKind.PERSON, id=person, name=None))
    _same_model(Subject.person("110105491231002"),
                Subject(kind=SubjectKind.PERSON, id=person, name=None))
    _same_model(Subject.organization(org), Subject(kind=SubjectKind.ORGANIZATION, id=org,
                                                   name=None, legal_representative=None))
    _same_model(Subject.organization(org, legal_representative=person),
                Subject(kind=SubjectKind.ORGANIZATION, id=org, name=None,
                        legal_representative=rep))
    _same_model(Subject.parse(org.lower()), Subject.organization(org))
    _same_model(Subject.parse(person), rep)
    assert hash(Subject.organization(org)) == hash(Subject.parse(org))
    # With a name, pydantic still validates it.
    assert Subject.organization(org, "某某公司").model_fields_set == {
        "kind", "id", "name", "legal_representative"}
    with pytest.raises(ValidationError):
        Subject.person(person, name=123)  # type: ignore[arg-type]


def test_trusted_decision_equals_its_validated_and_constructed_twins() -> None:
    subject = Subject.organization("91350100M000100Y43")
    values: dict[str, Any] = {
        "decision_id": "d" * 32, "outcome": Outcome.ALLOW, "subject": subject,
        "transaction": Transaction(scenario=Scenario.PROCUREMENT), "measures": [],
        "matches": [], "reasons": ["a"], "remedy": None, "degraded": False,
        "catalog_version": "1", "data_version": "2",
        "decided_at": dt.datetime(2026, 1, 2, tzinfo=CST), "receipt": None}
    made = trusted(Decision, dict(values), set(Decision.model_fields))
    _same_model(made, Decision(**values))
    _same_model(made, Decision.model_construct(**values))


def test_trusted_values_missing_a_field_take_pydantics_way() -> None:
    class Later(Decision):  # a field added after the caller of trusted() was written
        receipt_note: str = "none"

    subject = Subject.organization("91350100M000100Y43")
    values: dict[str, Any] = {
        "decision_id": "d" * 32, "outcome": Outcome.ALLOW, "subject": subject,
        "transaction": Transaction(scenario=Scenario.PROCUREMENT), "measures": [],
        "matches": [], "reasons": ["a"], "remedy": None, "degraded": False,
        "catalog_version": "1", "data_version": "2",
        "decided_at": dt.datetime(2026, 1, 2, tzinfo=CST)}
    made = trusted(Later, dict(values), set(values))
    assert made.receipt_note == "none"
    _same_model(made, Later(**values))


def test_the_pydantic_slots_trusted_writes_exist() -> None:
    from pydantic import BaseModel

    for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__",
                 "__pydantic_private__"):
        assert hasattr(BaseModel.__dict__[name], "__set__"), name
