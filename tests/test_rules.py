"""Example tests of the rulebook (DESIGN §3) against the demo catalogue."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from importlib import resources
from typing import Any

import pytest

from credit_check._ids import id_number_check_char, mask_id, uscc_check_char
from credit_check._models import (
    CST,
    Catalog,
    Decision,
    EntryStatus,
    ListEntry,
    ListKind,
    Outcome,
    Scenario,
    Subject,
    SubjectKind,
    Target,
    Transaction,
    Withheld,
)
from credit_check._rules import decide, fallback_decision, withheld_targets, years_before

CATALOG = Catalog.load(
    json.loads(resources.files("credit_check.data").joinpath("demo_catalog.json").read_text("utf-8"))
)
NOW = dt.datetime(2026, 3, 15, 10, 30, tzinfo=CST)

ORG_ID = "91350100M000100Y4" + uscc_check_char("91350100M000100Y4")
OTHER_ORG_ID = "91110000MA0000001" + uscc_check_char("91110000MA0000001")
REP_ID = "11010519491231002" + id_number_check_char("11010519491231002")
PERSON_ID = "35010219800101123" + id_number_check_char("35010219800101123")

COURT = "court.judgment_defaulter"
TAX = "tax.major_violation"
PROCUREMENT = "procurement.serious_violation"
MARKET = "market.serious_violation"
LABOR = "labor.wage_arrears"
SAFETY = "safety.serious_violation"
WATCH = "market.abnormal_operation"
BLACK_LISTS = [COURT, TAX, PROCUREMENT, MARKET, LABOR, SAFETY]
RED_LISTS = ["tax.a_grade", "customs.advanced_certified", "province.honest_model"]
UNKNOWN = "city.unknown_blacklist"

DEPARTMENTS = {
    COURT: "某市中级人民法院",
    TAX: "国家税务总局某省税务局",
    PROCUREMENT: "某省财政厅",
    UNKNOWN: "某市信用办",
}
_ids = itertools.count(1)
CJK = re.compile(r"[\u4e00-\u9fff]")


def entry(list_code: str, **overrides: Any) -> ListEntry:
    """An active, effective entry of the organisation ``ORG_ID`` on ``list_code``."""
    definition = CATALOG.list_definition(list_code)
    entry_id = f"E-{next(_ids):05d}"
    fields: dict[str, Any] = {
        "entry_id": entry_id,
        "list_code": list_code,
        "list_kind": definition.kind if definition else ListKind.BLACK,
        "subject_id": ORG_ID,
        "subject_kind": SubjectKind.ORGANIZATION,
        "name": "示例科技有限公司",
        "issuing_department": DEPARTMENTS.get(list_code, "某省发展改革委"),
        "basis_document": f"（2025）示字第{entry_id}号",
        "effective_from": NOW - dt.timedelta(days=365),
        "effective_until": None,
        "status": EntryStatus.ACTIVE,
    }
    fields.update(overrides)
    return ListEntry(**fields)


def check(
    scenario: str,
    entries: list[ListEntry] | tuple[ListEntry, ...] = (),
    *,
    subject: Subject | None = None,
    **kwargs: Any,
) -> Decision:
    return decide(
        subject=subject or Subject.organization(ORG_ID, "示例科技有限公司"),
        transaction=Transaction(scenario=Scenario(scenario), case_id="CASE-1"),
        catalog=CATALOG,
        now=kwargs.pop("now", NOW),
        decision_id="D-1",
        entries=entries,
        **kwargs,
    )


def codes(decision: Decision) -> list[str]:
    return [m.code for m in decision.measures]


def assert_not_mentioned(decision: Decision, e: ListEntry) -> None:
    assert e not in decision.matches
    assert all(e.entry_id not in m.entry_id for m in decision.measures if m.entry_id)
    for text in [*decision.reasons, decision.remedy or ""]:
        assert e.entry_id not in text
        assert e.basis_document not in text


# --- each measure fires for its lists and scenarios -------------------------------------


@pytest.mark.parametrize("scenario", ["procurement", "bidding"])
@pytest.mark.parametrize("list_code", [COURT, TAX, PROCUREMENT])
def test_procurement_and_bidding_deny_court_tax_and_procurement_lists(
    scenario: str, list_code: str
) -> None:
    d = check(scenario, [entry(list_code)])
    assert d.outcome is Outcome.DENY
    assert codes(d) == ["P-001"]


@pytest.mark.parametrize("scenario", ["procurement", "bidding"])
@pytest.mark.parametrize("list_code", [MARKET, LABOR, SAFETY])
def test_procurement_and_bidding_allow_black_lists_the_catalogue_does_not_name(
    scenario: str, list_code: str
) -> None:
    e = entry(list_code)
    d = check(scenario, [e])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []
    assert d.matches == [e]


@pytest.mark.parametrize(("scenario", "code"), [("subsidy", "P-002"), ("honor", "P-003")])
@pytest.mark.parametrize("list_code", BLACK_LISTS)
def test_subsidy_and_honor_deny_every_black_list(scenario: str, code: str, list_code: str) -> None:
    d = check(scenario, [entry(list_code)])
    assert d.outcome is Outcome.DENY
    assert codes(d) == [code]


@pytest.mark.parametrize("scenario", ["licensing", "qualification"])
@pytest.mark.parametrize("list_code", BLACK_LISTS)
def test_licensing_and_qualification_review_every_black_list(scenario: str, list_code: str) -> None:
    d = check(scenario, [entry(list_code)])
    assert d.outcome is Outcome.REVIEW
    assert codes(d) == ["P-004"]
    assert d.remedy is None


def test_licensing_restricts_the_watch_list() -> None:
    d = check("licensing", [entry(WATCH)])
    assert d.outcome is Outcome.RESTRICT
    assert codes(d) == ["P-005"]


@pytest.mark.parametrize("scenario", ["qualification", "procurement", "subsidy", "market_access"])
def test_watch_list_has_no_measure_outside_licensing(scenario: str) -> None:
    d = check(scenario, [entry(WATCH)])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []


@pytest.mark.parametrize("scenario", ["market_access", "public_resource"])
@pytest.mark.parametrize("list_code", [TAX, LABOR])
def test_scenarios_without_a_measure_for_the_list_allow(scenario: str, list_code: str) -> None:
    d = check(scenario, [entry(list_code)])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []


def test_applied_measure_carries_code_name_legal_basis_department_and_trigger() -> None:
    e = entry(COURT)
    (m,) = check("procurement", [e]).measures
    source = next(x for x in CATALOG.measures if x.code == "P-001")
    assert (m.code, m.name, m.effect, m.target) == ("P-001", source.name, source.effect, source.target)
    assert m.legal_basis == source.legal_basis and m.legal_basis
    assert m.implementing_department == source.implementing_department
    assert (m.list_code, m.entry_id) == (COURT, e.entry_id)


def test_one_measure_is_applied_once_however_many_entries_trigger_it() -> None:
    d = check("procurement", [entry(COURT), entry(TAX), entry(PROCUREMENT)])
    assert codes(d) == ["P-001"]
    assert len(d.matches) == 3


# --- legal representative (rule 6) ------------------------------------------------------


def rep_subject() -> Subject:
    return Subject.organization(ORG_ID, "示例科技有限公司", legal_representative=REP_ID)


def test_market_access_denies_when_the_representative_represents_a_court_listed_organisation() -> None:
    org_entry = entry(COURT, subject_id=OTHER_ORG_ID, legal_representative_id=REP_ID)
    d = check("market_access", subject=rep_subject(), representative_entries=[org_entry])
    assert d.outcome is Outcome.DENY
    (m,) = d.measures
    assert (m.code, m.target, m.entry_id) == ("P-006", Target.LEGAL_REPRESENTATIVE, org_entry.entry_id)
    assert d.matches == [org_entry]
    assert any(OTHER_ORG_ID in r and mask_id(REP_ID) in r for r in d.reasons)
    assert d.remedy is not None and org_entry.issuing_department in d.remedy


def test_market_access_denies_when_the_representative_is_personally_on_the_court_list() -> None:
    own = entry(COURT, subject_id=REP_ID, subject_kind=SubjectKind.PERSON, name="张三")
    d = check("market_access", subject=rep_subject(), representative_entries=[own])
    assert d.outcome is Outcome.DENY
    assert codes(d) == ["P-006"]
    assert d.matches == [own]


def test_every_representative_entry_that_triggers_is_matched_and_explained() -> None:
    own = entry(COURT, subject_id=REP_ID, subject_kind=SubjectKind.PERSON)
    org_entry = entry(COURT, subject_id=OTHER_ORG_ID, legal_representative_id=REP_ID)
    for order in ([own, org_entry], [org_entry, own]):
        d = check("market_access", subject=rep_subject(), representative_entries=order)
        assert codes(d) == ["P-006"]
        assert {e.entry_id for e in d.matches} == {own.entry_id, org_entry.entry_id}
        assert all(any(e.basis_document in r for r in d.reasons) for e in order)


def test_representative_on_a_list_without_a_representative_measure_allows() -> None:
    own = entry(TAX, subject_id=REP_ID, subject_kind=SubjectKind.PERSON)
    d = check("market_access", subject=rep_subject(), representative_entries=[own])
    assert d.outcome is Outcome.ALLOW
    assert d.matches == []


def test_representative_measure_applies_only_in_its_scenario() -> None:
    own = entry(COURT, subject_id=REP_ID, subject_kind=SubjectKind.PERSON)
    d = check("procurement", subject=rep_subject(), representative_entries=[own])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []


def test_representative_entries_never_trigger_subject_measures() -> None:
    org_entry = entry(COURT, subject_id=OTHER_ORG_ID, legal_representative_id=REP_ID)
    d = check("procurement", subject=rep_subject(), representative_entries=[org_entry])
    assert d.outcome is Outcome.ALLOW


def test_suspended_representative_entry_applies_no_measure() -> None:
    # the court list does not suspend; a tax entry does, but P-006 only names the court list,
    # so suspension is shown with a catalogue that lets an objection on the court list suspend
    data = json.loads(CATALOG.model_dump_json())
    next(x for x in data["lists"] if x["code"] == COURT)["suspend_on_objection"] = True
    catalog = Catalog.load(data)
    own = entry(COURT, subject_id=REP_ID, subject_kind=SubjectKind.PERSON,
                status=EntryStatus.OBJECTION_PENDING)
    d = decide(subject=rep_subject(), transaction=Transaction(scenario=Scenario.MARKET_ACCESS),
               catalog=catalog, now=NOW, decision_id="D-1", representative_entries=[own])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []


def test_subject_listed_itself_is_reported_once_when_also_passed_as_representative_entry() -> None:
    own = entry(COURT, legal_representative_id=REP_ID)
    d = check("market_access", [own], subject=rep_subject(), representative_entries=[own])
    assert d.outcome is Outcome.DENY
    assert d.matches == [own]


def test_person_representative_id_is_masked_in_reasons() -> None:
    own = entry(COURT, subject_id=REP_ID, subject_kind=SubjectKind.PERSON)
    d = check("market_access", subject=rep_subject(), representative_entries=[own])
    assert all(REP_ID not in r for r in d.reasons)
    assert any(mask_id(REP_ID) in r for r in d.reasons)
    assert REP_ID not in (d.remedy or "")


def test_person_subject_id_never_appears_in_reasons() -> None:
    e = entry(COURT, subject_id=PERSON_ID, subject_kind=SubjectKind.PERSON)
    d = check("procurement", [e], subject=Subject.person(PERSON_ID, "李四"))
    assert d.outcome is Outcome.DENY
    assert all(PERSON_ID not in r for r in [*d.reasons, d.remedy or ""])


# --- green channel (rule 5) ---------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["licensing", "qualification"])
@pytest.mark.parametrize("list_code", RED_LISTS)
def test_red_lists_grant_green_channel_with_thirty_day_commitment(scenario: str, list_code: str) -> None:
    e = entry(list_code)
    d = check(scenario, [e])
    assert d.outcome is Outcome.GREEN_CHANNEL
    (m,) = d.measures
    assert (m.code, m.entry_id, m.params["commitment_days"]) == ("R-001", e.entry_id, 30)
    assert any("30" in r and "R-001" in r for r in d.reasons)


@pytest.mark.parametrize("scenario", ["procurement", "bidding", "subsidy", "market_access"])
def test_red_lists_grant_nothing_outside_licensing_and_qualification(scenario: str) -> None:
    d = check(scenario, [entry("tax.a_grade")])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []


def test_clean_record_of_exactly_three_years_grants_green_channel() -> None:
    since = years_before(NOW, 3)
    assert since == dt.datetime(2023, 3, 15, 10, 30, tzinfo=CST)
    d = check("licensing", clean_since=since)
    assert d.outcome is Outcome.GREEN_CHANNEL
    (m,) = d.measures
    assert (m.code, m.entry_id) == ("R-001", None)


def test_clean_record_of_longer_than_three_years_grants_green_channel() -> None:
    d = check("qualification", clean_since=NOW - dt.timedelta(days=365 * 10))
    assert d.outcome is Outcome.GREEN_CHANNEL


@pytest.mark.parametrize(
    "since",
    [
        years_before(NOW, 3) + dt.timedelta(days=1),
        years_before(NOW, 3) + dt.timedelta(microseconds=1),
        NOW - dt.timedelta(days=30),
        None,
    ],
    ids=["a-day-short", "a-microsecond-short", "recent", "unknown"],
)
def test_clean_record_shorter_than_three_years_or_unknown_grants_nothing(
    since: dt.datetime | None,
) -> None:
    d = check("licensing", clean_since=since)
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []


def test_clean_record_on_29_february_counts_back_to_28_february() -> None:
    now = dt.datetime(2028, 2, 29, 12, tzinfo=CST)
    assert years_before(now, 3) == dt.datetime(2025, 2, 28, 12, tzinfo=CST)
    assert check("licensing", now=now, clean_since=years_before(now, 3)).outcome is Outcome.GREEN_CHANNEL


@pytest.mark.parametrize("list_code", [COURT, TAX, WATCH, UNKNOWN])
def test_black_or_watch_entry_rules_out_green_channel_from_red_list_and_clean_record(
    list_code: str,
) -> None:
    d = check("qualification", [entry("tax.a_grade"), entry(list_code)],
              clean_since=NOW - dt.timedelta(days=4000))
    assert d.outcome is not Outcome.GREEN_CHANNEL
    assert "R-001" not in codes(d)
    assert any("R-001" in r and "not granted" in r for r in d.reasons)


def test_red_entry_under_suspending_objection_grants_nothing() -> None:
    d = check("licensing", [entry("tax.a_grade", status=EntryStatus.OBJECTION_PENDING)])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []


def test_red_entry_under_objection_is_not_said_to_rule_out_the_green_channel() -> None:
    d = check("licensing", [entry("tax.a_grade", status=EntryStatus.OBJECTION_PENDING)],
              clean_since=NOW - dt.timedelta(days=4000))
    assert d.outcome is Outcome.GREEN_CHANNEL
    assert not any("rules out the green channel" in r for r in d.reasons)


# --- objections (rule 3) -----------------------------------------------------------------


def test_objection_on_a_suspending_list_applies_no_measure() -> None:
    e = entry(TAX, status=EntryStatus.OBJECTION_PENDING)
    d = check("procurement", [e])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []
    assert d.matches == [e]
    assert any("suspended" in r and "暂停" in r for r in d.reasons)


def test_objection_on_a_suspending_list_still_blocks_green_channel_and_says_why() -> None:
    red, tax = entry("tax.a_grade"), entry(TAX, status=EntryStatus.OBJECTION_PENDING)
    d = check("licensing", [red, tax])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []
    why = [r for r in d.reasons if "R-001" in r]
    assert len(why) == 1
    assert "pending objections included" in why[0] and "异议处理中" in why[0]
    assert "重大税收违法失信主体" in why[0]


def test_objection_on_the_watch_list_blocks_clean_record_green_channel() -> None:
    d = check("licensing", [entry(WATCH, status=EntryStatus.OBJECTION_PENDING)],
              clean_since=NOW - dt.timedelta(days=4000))
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []


def test_objection_on_the_court_list_does_not_suspend_its_measures() -> None:
    e = entry(COURT, status=EntryStatus.OBJECTION_PENDING)
    d = check("procurement", [e])
    assert d.outcome is Outcome.DENY
    assert codes(d) == ["P-001"]
    assert any("not suspended" in r for r in d.reasons)


def test_objection_on_an_unknown_list_is_treated_as_suspending() -> None:
    d = check("licensing", [entry("tax.a_grade"), entry(UNKNOWN, status=EntryStatus.OBJECTION_PENDING)])
    assert d.outcome is Outcome.ALLOW


# --- ignored entries (rules 2 and 4) -----------------------------------------------------


@pytest.mark.parametrize("status", [EntryStatus.REPAIRED, EntryStatus.REMOVED, EntryStatus.EXPIRED])
def test_repaired_removed_and_expired_entries_are_ignored_entirely(status: EntryStatus) -> None:
    gone = entry(COURT, status=status)
    d = check("procurement", [gone])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == [] and d.matches == []
    assert_not_mentioned(d, gone)


@pytest.mark.parametrize("status", [EntryStatus.REPAIRED, EntryStatus.REMOVED, EntryStatus.EXPIRED])
def test_ignored_black_entry_does_not_block_green_channel(status: EntryStatus) -> None:
    red, gone = entry("province.honest_model"), entry(TAX, status=status)
    d = check("licensing", [red, gone])
    assert d.outcome is Outcome.GREEN_CHANNEL
    assert d.matches == [red]
    assert_not_mentioned(d, gone)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (NOW + dt.timedelta(microseconds=1), None),
        (NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=400)),
        (NOW - dt.timedelta(days=400), NOW),
        (NOW - dt.timedelta(days=400), NOW - dt.timedelta(hours=1)),
    ],
    ids=["starts-in-a-microsecond", "future", "ended-now", "ended-an-hour-ago"],
)
def test_entries_outside_their_period_are_ignored_entirely(
    start: dt.datetime, end: dt.datetime | None
) -> None:
    outside = entry(COURT, effective_from=start, effective_until=end)
    d = check("procurement", [outside])
    assert d.outcome is Outcome.ALLOW
    assert_not_mentioned(d, outside)


@pytest.mark.parametrize(
    ("start", "end"),
    [(NOW, None), (NOW - dt.timedelta(days=1), NOW + dt.timedelta(microseconds=1))],
    ids=["starts-now", "ends-in-a-microsecond"],
)
def test_entries_inside_their_period_count(start: dt.datetime, end: dt.datetime | None) -> None:
    assert check("procurement", [entry(COURT, effective_from=start, effective_until=end)]).outcome is Outcome.DENY


def test_ignored_representative_entries_are_ignored_entirely() -> None:
    gone = entry(COURT, subject_id=REP_ID, subject_kind=SubjectKind.PERSON, status=EntryStatus.REPAIRED)
    d = check("market_access", subject=rep_subject(), representative_entries=[gone])
    assert d.outcome is Outcome.ALLOW
    assert_not_mentioned(d, gone)


def test_period_is_compared_as_instants_across_time_zones() -> None:
    until_utc = (NOW + dt.timedelta(minutes=1)).astimezone(dt.UTC)
    d = check("procurement", [entry(COURT, effective_until=until_utc)])
    assert d.outcome is Outcome.DENY


# --- lists unknown to the catalogue (rule 1) ---------------------------------------------


def test_entry_on_a_list_unknown_to_the_catalogue_applies_no_measure() -> None:
    e = entry(UNKNOWN)
    d = check("procurement", [e])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []
    assert d.matches == [e]
    assert any("not in the current catalogue" in r for r in d.reasons)


def test_black_entry_on_an_unknown_list_still_blocks_green_channel() -> None:
    d = check("licensing", [entry("tax.a_grade"), entry(UNKNOWN)])
    assert d.outcome is Outcome.ALLOW
    assert d.measures == []


def test_red_entry_on_an_unknown_list_grants_nothing() -> None:
    d = check("licensing", [entry("city.unknown_redlist", list_kind=ListKind.RED)])
    assert d.outcome is Outcome.ALLOW


# --- explanation (rule 8) ----------------------------------------------------------------


def test_deny_carries_a_remedy_naming_the_issuing_department() -> None:
    d = check("procurement", [entry(COURT)])
    assert d.remedy is not None
    assert DEPARTMENTS[COURT] in d.remedy
    assert "异议" in d.remedy and "repair" in d.remedy


def test_deny_remedy_names_every_department_whose_entry_denies() -> None:
    entries = [entry(COURT), entry(TAX), entry(LABOR)]
    for order in (entries, entries[::-1]):
        remedy = check("procurement", order).remedy
        assert remedy is not None
        assert DEPARTMENTS[COURT] in remedy and DEPARTMENTS[TAX] in remedy
        # the labour entry does not deny in procurement: its department is not sent an objection
        assert entries[2].issuing_department not in remedy


@pytest.mark.parametrize("scenario", ["licensing", "procurement"])
def test_decisions_that_do_not_deny_carry_no_remedy(scenario: str) -> None:
    assert check(scenario, [entry(WATCH)]).remedy is None


def test_decision_carries_catalogue_and_data_version_time_and_id() -> None:
    d = check("procurement", [entry(COURT)], data_version="v-42", degraded=True)
    assert d.catalog_version == "2026.1"
    assert d.data_version == "v-42"
    assert d.decided_at == NOW
    assert d.decision_id == "D-1"
    assert d.degraded is True


def test_matches_name_list_department_basis_and_period() -> None:
    e = entry(TAX, effective_until=NOW + dt.timedelta(days=30))
    d = check("bidding", [e])
    (reason,) = [r for r in d.reasons if e.basis_document in r]
    for part in (TAX, e.issuing_department, e.effective_from.date().isoformat(),
                 e.effective_until.date().isoformat() if e.effective_until else ""):
        assert part in reason


@pytest.mark.parametrize(
    ("scenario", "entries", "kwargs"),
    [
        ("procurement", lambda: [], {}),
        ("procurement", lambda: [entry(COURT), entry(LABOR)], {}),
        ("licensing", lambda: [entry("tax.a_grade"), entry(TAX, status=EntryStatus.OBJECTION_PENDING)], {}),
        ("licensing", lambda: [], {"clean_since": NOW - dt.timedelta(days=4000)}),
        ("licensing", lambda: [entry(WATCH), entry(UNKNOWN)], {}),
        ("market_access", lambda: [], {
            "subject": rep_subject(),
            "representative_entries": [entry(COURT, subject_id=OTHER_ORG_ID, legal_representative_id=REP_ID)],
        }),
    ],
)
def test_every_reason_is_bilingual(scenario: str, entries: Any, kwargs: dict[str, Any]) -> None:
    d = check(scenario, entries(), **kwargs)
    assert d.reasons
    for text in [*d.reasons, *([d.remedy] if d.remedy else [])]:
        assert CJK.search(text), text
        assert " / " in text, text
        assert re.search(r"[A-Za-z]{3,}", text.split(" / ", 1)[1]), text


def test_last_reason_states_the_outcome() -> None:
    d = check("licensing", [entry(WATCH)])
    assert d.reasons[-1].endswith("Outcome: restrict.")


# --- degraded fallback (rule 9) ----------------------------------------------------------


@pytest.mark.parametrize("outcome", [Outcome.REVIEW, Outcome.ALLOW, Outcome.DENY])
def test_fallback_decision_is_degraded_with_the_given_outcome_and_no_measures(outcome: Outcome) -> None:
    d = fallback_decision(
        subject=Subject.person(PERSON_ID),
        transaction=Transaction(scenario=Scenario.PROCUREMENT, case_id="CG-1"),
        outcome=outcome,
        now=NOW,
        decision_id="D-9",
        catalog_version="2026.1",
        data_version="v-7",
        cause="timeout",
    )
    assert d.degraded is True
    assert d.outcome is outcome
    assert d.measures == [] and d.matches == []
    assert (d.catalog_version, d.data_version, d.decided_at, d.decision_id) == ("2026.1", "v-7", NOW, "D-9")
    (reason,) = d.reasons
    assert CJK.search(reason) and " / " in reason
    assert "timeout" in reason and outcome.value in reason
    assert PERSON_ID not in reason


def test_fallback_decision_without_catalogue_or_cause() -> None:
    d = fallback_decision(
        subject=Subject.organization(ORG_ID),
        transaction=Transaction(scenario=Scenario.LICENSING),
        outcome=Outcome.REVIEW,
        now=NOW,
        decision_id="D-10",
        catalog_version=None,
    )
    assert d.degraded and d.catalog_version is None and d.data_version is None
    assert "()" not in d.reasons[0] and "（）" not in d.reasons[0]


def test_the_catalogue_decides_a_list_kind_not_the_entry() -> None:
    """A watch-list entry that calls itself red earns no reward and still blocks the green channel."""
    mislabelled = entry("market.abnormal_operation", list_kind=ListKind.RED)
    clean = NOW - dt.timedelta(days=365 * 5)
    d = check("licensing", [mislabelled], clean_since=clean)
    assert d.outcome is Outcome.RESTRICT
    assert codes(d) == ["P-005"]


# --- rule 11: withheld is never clean ------------------------------------------------------

SUBJECT_WITHHELD = Withheld(role="subject", reason="key_not_allowed_persons")
REP_WITHHELD = Withheld(role="legal_representative", reason="key_not_allowed_persons")


def test_withheld_roles_count_only_where_a_measure_of_the_scenario_targets_them() -> None:
    both = [SUBJECT_WITHHELD, REP_WITHHELD]
    assert withheld_targets(CATALOG, Scenario.PROCUREMENT, both) == (SUBJECT_WITHHELD,)
    assert withheld_targets(CATALOG, Scenario.MARKET_ACCESS, both) == (REP_WITHHELD,)
    assert withheld_targets(CATALOG, Scenario.PUBLIC_RESOURCE, both) == ()
    assert withheld_targets(CATALOG, Scenario.PROCUREMENT,
                            [Withheld(role="director", reason="x")]) == ()


@pytest.mark.parametrize(("fallback", "outcome"), [
    (Outcome.ALLOW, Outcome.REVIEW), (Outcome.RESTRICT, Outcome.REVIEW),
    (Outcome.REVIEW, Outcome.REVIEW), (Outcome.DENY, Outcome.DENY),
])
def test_a_withheld_person_gets_the_fallback_but_at_least_review_degraded(
    fallback: Outcome, outcome: Outcome
) -> None:
    d = check("procurement", subject=Subject.person(PERSON_ID), withheld=[SUBJECT_WITHHELD],
              fallback=fallback)
    assert d.outcome is outcome and d.degraded and not d.measures
    text = " ".join(d.reasons)
    assert "本部门密钥无权查看自然人信用信息" in text
    assert "this department key may not see natural persons' entries" in text
    assert "No effective red or black list entry" not in text
    assert PERSON_ID not in text


def test_withheld_subject_is_never_granted_the_green_channel() -> None:
    d = check("licensing", withheld=[SUBJECT_WITHHELD],
              clean_since=NOW - dt.timedelta(days=3650))
    assert d.outcome is Outcome.REVIEW and d.degraded
    assert "R-001" not in codes(d)


def test_withheld_representative_in_market_access_is_review_not_allow() -> None:
    rep = Subject.person(REP_ID)
    d = check("market_access", subject=Subject.organization(ORG_ID, legal_representative=rep),
              withheld=[REP_WITHHELD])
    assert d.outcome is Outcome.REVIEW and d.degraded
    assert "the legal representative" in d.reasons[-1] or any(
        "the legal representative" in r for r in d.reasons)


def test_a_visible_deny_stays_deny_when_a_role_is_also_withheld() -> None:
    d = check("procurement", [entry(COURT)], withheld=[SUBJECT_WITHHELD])
    assert d.outcome is Outcome.DENY and d.degraded and codes(d) == ["P-001"]


def test_nothing_withheld_decides_as_before() -> None:
    assert check("procurement").outcome is Outcome.ALLOW
    assert not check("procurement").degraded
