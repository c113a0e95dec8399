"""Property tests of the rulebook (DESIGN §3) over generated entries and the demo catalogue."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from importlib import resources
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from credit_check._ids import id_number_check_char, uscc_check_char
from credit_check._models import (
    CST,
    Catalog,
    Decision,
    Effect,
    EntryStatus,
    ListEntry,
    ListKind,
    Outcome,
    Scenario,
    Subject,
    SubjectKind,
    Transaction,
    Withheld,
)
from credit_check._rules import clean_years, decide, time_signature, withheld_targets

CATALOG = Catalog.load(
    json.loads(resources.files("credit_check.data").joinpath("demo_catalog.json").read_text("utf-8"))
)
MEASURES = {m.code: m for m in CATALOG.measures}
NOW = dt.datetime(2026, 3, 15, 10, 30, tzinfo=CST)
UNKNOWN = "city.unknown_list"
LIST_CODES = [item.code for item in CATALOG.lists] + [UNKNOWN]
BLACK_CODES = [item.code for item in CATALOG.lists if item.kind is ListKind.BLACK] + [UNKNOWN]

ORG_ID = "91350100M000100Y4" + uscc_check_char("91350100M000100Y4")
OTHER_ORG_ID = "91110000MA0000001" + uscc_check_char("91110000MA0000001")
REP_ID = "11010519491231002" + id_number_check_char("11010519491231002")
PERSON_ID = "35010219800101123" + id_number_check_char("35010219800101123")

IGNORED = (EntryStatus.REPAIRED, EntryStatus.REMOVED, EntryStatus.EXPIRED)
PROPERTY = settings(max_examples=250, deadline=None)

# offsets around NOW that hit the period boundaries as well as the ordinary cases
_OFFSETS = st.one_of(
    st.sampled_from([dt.timedelta(0), dt.timedelta(microseconds=1), -dt.timedelta(microseconds=1)]),
    st.timedeltas(min_value=-dt.timedelta(days=3 * 366), max_value=dt.timedelta(days=3 * 366)),
)

_STATUSES = st.sampled_from([EntryStatus.ACTIVE, EntryStatus.OBJECTION_PENDING]) | st.sampled_from(EntryStatus)


def _kind(code: str, draw: Any) -> ListKind:
    definition = CATALOG.list_definition(code)
    return definition.kind if definition else draw(st.sampled_from(ListKind))


@st.composite
def periods(draw: Any) -> tuple[dt.datetime, dt.datetime | None]:
    if draw(st.booleans()):  # half plainly in effect, so combinations of counting entries are common
        return NOW - dt.timedelta(days=100), draw(st.none() | st.just(NOW + dt.timedelta(days=100)))
    start = NOW + draw(_OFFSETS)
    end = draw(st.none() | _OFFSETS.map(lambda o: NOW + o))
    return start, end


@st.composite
def entries(draw: Any, *, subject_id: str = ORG_ID, subject_kind: SubjectKind = SubjectKind.ORGANIZATION,
            codes: list[str] = LIST_CODES, statuses: Any = _STATUSES,
            period: Any = None, tag: str = "E") -> ListEntry:
    code = draw(st.sampled_from(codes))
    start, end = draw(period if period is not None else periods())
    n = draw(st.integers(0, 10**9))
    return ListEntry(
        entry_id=f"{tag}-{n}",
        list_code=code,
        list_kind=_kind(code, draw),
        subject_id=subject_id,
        subject_kind=subject_kind,
        issuing_department=draw(st.sampled_from(["某市中级人民法院", "某省税务局", "某省财政厅", "某市信用办"])),
        basis_document=f"<{tag}-{n}>",
        effective_from=start,
        effective_until=end,
        status=draw(statuses),
    )


def unique(items: list[ListEntry]) -> list[ListEntry]:
    return list({e.entry_id: e for e in items}.values())


@dataclasses.dataclass
class Case:
    subject: Subject
    scenario: Scenario
    entries: list[ListEntry]
    representative_entries: list[ListEntry]
    clean_since: dt.datetime | None

    def decide(self, **changes: Any) -> Decision:
        args = dataclasses.asdict(self) | changes
        return decide(
            subject=args["subject"],
            transaction=Transaction(scenario=args["scenario"]),
            catalog=CATALOG,
            now=args.get("now", NOW),
            decision_id="D-1",
            entries=args["entries"],
            representative_entries=args["representative_entries"],
            clean_since=args["clean_since"],
            data_version="v-1",
            withheld=args.get("withheld", ()),
            fallback=args.get("fallback", Outcome.REVIEW),
        )


@st.composite
def cases(draw: Any) -> Case:
    kind = draw(st.sampled_from(["org", "org_with_rep", "person"]))
    if kind == "person":
        subject = Subject.person(PERSON_ID)
        own = st.lists(entries(subject_id=PERSON_ID, subject_kind=SubjectKind.PERSON), max_size=6)
        rep_entries: list[ListEntry] = []
    else:
        subject = Subject.organization(ORG_ID, legal_representative=REP_ID if kind == "org_with_rep" else None)
        own = st.lists(entries(), max_size=6)
        rep_entries = []
        if kind == "org_with_rep":
            rep_entries = draw(st.lists(
                entries(subject_id=REP_ID, subject_kind=SubjectKind.PERSON, tag="R")
                | entries(subject_id=OTHER_ORG_ID, tag="O").map(
                    lambda e: e.model_copy(update={"legal_representative_id": REP_ID})),
                max_size=4,
            ))
    clean_since = draw(st.none() | _OFFSETS.map(lambda o: NOW - dt.timedelta(days=3 * 365) + o))
    return Case(subject, draw(st.sampled_from(Scenario)), unique(draw(own)), unique(rep_entries), clean_since)


def counts_now(e: ListEntry) -> bool:
    """Whether an entry is neither ignored nor out of period (rules 2 and 4)."""
    return e.status not in IGNORED and e.effective_from <= NOW and (
        e.effective_until is None or e.effective_until > NOW
    )


def suspended(e: ListEntry) -> bool:
    definition = CATALOG.list_definition(e.list_code)
    suspends = definition.suspend_on_objection if definition else True
    return e.status is EntryStatus.OBJECTION_PENDING and suspends


def essentials(d: Decision) -> tuple[Any, ...]:
    return d.outcome, d.measures, d.matches, d.reasons, d.remedy


ignored_entries = entries(statuses=st.sampled_from(IGNORED), tag="X") | entries(
    statuses=st.sampled_from([EntryStatus.ACTIVE, EntryStatus.OBJECTION_PENDING]),
    period=st.one_of(
        _OFFSETS.filter(lambda o: o > dt.timedelta(0)).map(lambda o: (NOW + o, None)),
        _OFFSETS.filter(lambda o: o <= dt.timedelta(0)).map(lambda o: (NOW + o - dt.timedelta(days=1), NOW + o)),
    ),
    tag="X",
)


@PROPERTY
@given(case=cases(), extra=st.lists(ignored_entries, min_size=1, max_size=4), data=st.data())
def test_repaired_removed_expired_and_out_of_period_entries_change_nothing(
    case: Case, extra: list[ListEntry], data: st.DataObject
) -> None:
    assert not any(counts_now(e) for e in extra)
    before = case.decide()
    mixed = list(case.entries)
    for e in unique(extra):
        mixed.insert(data.draw(st.integers(0, len(mixed))), e)
    assert essentials(case.decide(entries=mixed)) == essentials(before)
    if case.subject.legal_representative is not None:
        rep_extra = [e.model_copy(update={"legal_representative_id": REP_ID}) for e in unique(extra)]
        after = case.decide(representative_entries=case.representative_entries + rep_extra)
        assert essentials(after) == essentials(before)


@PROPERTY
@given(
    case=cases(),
    black=entries(codes=BLACK_CODES, statuses=st.just(EntryStatus.ACTIVE),
                  period=st.just((NOW - dt.timedelta(days=10), None)), tag="B"),
)
def test_adding_an_effective_black_entry_never_lowers_severity(case: Case, black: ListEntry) -> None:
    black = black.model_copy(update={"list_kind": ListKind.BLACK})
    if case.subject.kind is SubjectKind.PERSON:
        black = black.model_copy(update={"subject_id": PERSON_ID, "subject_kind": SubjectKind.PERSON})
    before = case.decide()
    after = case.decide(entries=[*case.entries, black])
    assert after.outcome.severity >= before.outcome.severity
    assert after.outcome is not Outcome.GREEN_CHANNEL


@PROPERTY
@given(case=cases())
def test_applied_measures_come_from_the_catalogue_for_the_scenario_with_full_details(case: Case) -> None:
    d = case.decide()
    by_id = {e.entry_id: e for e in [*case.entries, *case.representative_entries]}
    assert len({a.code for a in d.measures}) == len(d.measures)
    for a in d.measures:
        m = MEASURES[a.code]
        assert case.scenario in m.scenarios
        assert (a.name, a.effect, a.target) == (m.name, m.effect, m.target)
        assert a.legal_basis == m.legal_basis and a.legal_basis
        assert a.implementing_department == m.implementing_department and a.implementing_department
        if a.entry_id is None:
            assert m.clean_years is not None and case.clean_since is not None
        else:
            trigger = by_id[a.entry_id]
            assert trigger.list_code == a.list_code
            assert trigger.list_code in m.list_codes
            assert counts_now(trigger) and not suspended(trigger)


@PROPERTY
@given(case=cases())
def test_green_channel_never_comes_with_a_black_or_watch_entry_of_the_subject(case: Case) -> None:
    d = case.decide()
    blocking = [e for e in case.entries if counts_now(e) and e.list_kind is not ListKind.RED]
    if blocking:
        assert d.outcome is not Outcome.GREEN_CHANNEL
        assert all(MEASURES[a.code].effect.value != "green_channel" for a in d.measures)


@PROPERTY
@given(case=cases())
def test_entries_on_suspending_lists_apply_no_measure_while_objection_is_pending(case: Case) -> None:
    d = case.decide()
    paused = {e.entry_id for e in [*case.entries, *case.representative_entries] if suspended(e)}
    assert not paused & {a.entry_id for a in d.measures}
    # and removing them changes no punitive measure: they contribute nothing but the green-channel block
    without = case.decide(
        entries=[e for e in case.entries if e.entry_id not in paused],
        representative_entries=[e for e in case.representative_entries if e.entry_id not in paused],
    )

    def punitive(x: Decision) -> set[str]:
        return {a.code for a in x.measures if a.effect.value != "green_channel"}

    assert punitive(d) == punitive(without)


@PROPERTY
@given(case=cases(), data=st.data())
def test_outcome_and_measures_do_not_depend_on_entry_order(case: Case, data: st.DataObject) -> None:
    d = case.decide()
    shuffled = case.decide(
        entries=data.draw(st.permutations(case.entries)),
        representative_entries=data.draw(st.permutations(case.representative_entries)),
    )
    assert shuffled.outcome is d.outcome
    assert {a.code for a in shuffled.measures} == {a.code for a in d.measures}
    assert {e.entry_id for e in shuffled.matches} == {e.entry_id for e in d.matches}
    assert (shuffled.remedy is None) == (d.remedy is None)
    if d.remedy is not None:
        departments = {e.issuing_department for e in [*case.entries, *case.representative_entries]}
        assert {x for x in departments if x in d.remedy} == {x for x in departments if x in (shuffled.remedy or "")}


_NEAR = st.sampled_from([dt.timedelta(0), dt.timedelta(microseconds=1), -dt.timedelta(microseconds=1)])


@PROPERTY
@given(
    start=_OFFSETS,
    length=st.none() | st.timedeltas(min_value=dt.timedelta(microseconds=1), max_value=dt.timedelta(days=800)),
    anchor=st.sampled_from(["start", "end", "anywhere"]),
    at=_NEAR | _OFFSETS,
    status=st.sampled_from([EntryStatus.ACTIVE, EntryStatus.OBJECTION_PENDING]),
)
def test_an_entry_is_effective_exactly_from_its_start_until_before_its_end(
    start: dt.timedelta, length: dt.timedelta | None, anchor: str, at: dt.timedelta, status: EntryStatus
) -> None:
    begins = NOW + start
    ends = begins + length if length is not None else None
    now = {"start": begins, "end": ends or begins, "anywhere": NOW}[anchor] + at
    e = ListEntry(
        entry_id="E-1", list_code="court.judgment_defaulter", list_kind=ListKind.BLACK,
        subject_id=ORG_ID, subject_kind=SubjectKind.ORGANIZATION, issuing_department="某市中级人民法院",
        effective_from=begins, effective_until=ends, status=status,
    )
    d = decide(subject=Subject.organization(ORG_ID), transaction=Transaction(scenario=Scenario.BIDDING),
               catalog=CATALOG, now=now, decision_id="D-1", entries=[e])
    effective = begins <= now and (ends is None or now < ends)
    assert (d.matches == [e]) is effective
    assert (d.outcome is Outcome.DENY) is effective


@PROPERTY
@given(case=cases())
def test_outcome_is_the_most_severe_effect_of_the_applied_measures(case: Case) -> None:
    d = case.decide()
    expected = Outcome.most_severe(Outcome(a.effect.value) for a in d.measures)
    assert d.outcome is expected
    if not d.measures:
        assert d.outcome is Outcome.ALLOW
    assert (d.remedy is not None) is (d.outcome is Outcome.DENY)


@PROPERTY
@given(case=cases())
def test_reasons_are_bilingual_and_never_show_a_person_id_or_an_ignored_entry(case: Case) -> None:
    d = case.decide()
    texts = [*d.reasons, *([d.remedy] if d.remedy else [])]
    gone = [e for e in [*case.entries, *case.representative_entries] if not counts_now(e)]
    for text in texts:
        assert " / " in text
        assert PERSON_ID not in text and REP_ID not in text
        for e in gone:
            assert e.basis_document not in text
    assert not {e.entry_id for e in gone} & {e.entry_id for e in d.matches}
    assert d.catalog_version == CATALOG.version and d.data_version == "v-1"


@PROPERTY
@given(case=cases(), data=st.data())
def test_moments_with_the_same_time_signature_get_the_same_decision(
    case: Case, data: st.DataObject
) -> None:
    # The Checker reuses a decision's content while the signature holds; a signature that
    # missed something decide() reads from the clock would show here as a differing pair.
    # The second moment is drawn near the boundaries, where decisions change.
    boundaries = [NOW]
    for e in [*case.entries, *case.representative_entries]:
        boundaries += [e.effective_from] + ([e.effective_until] if e.effective_until else [])
    if case.clean_since is not None:
        boundaries.append(case.clean_since + dt.timedelta(days=3 * 365))
    later = data.draw(st.sampled_from(boundaries)) + data.draw(_NEAR | _OFFSETS)
    years = clean_years(CATALOG, case.scenario)

    def signature(now: dt.datetime) -> tuple[bool, ...]:
        return time_signature(case.entries, case.representative_entries, case.clean_since, years, now)

    first, second = case.decide(), case.decide(now=later)
    assert second.decided_at == later
    if signature(NOW) == signature(later):
        assert essentials(second) == essentials(first)


def test_the_time_signature_follows_a_legal_representatives_entry_out_of_its_period() -> None:
    # The representative's side of the signature, which the property above reaches only rarely.
    ends = NOW + dt.timedelta(days=1)
    represented = ListEntry(
        entry_id="R-1", list_code="court.judgment_defaulter", list_kind=ListKind.BLACK,
        subject_id=OTHER_ORG_ID, subject_kind=SubjectKind.ORGANIZATION,
        issuing_department="某市中级人民法院", effective_from=NOW - dt.timedelta(days=30),
        effective_until=ends, legal_representative_id=REP_ID,
    )
    case = Case(Subject.organization(ORG_ID, legal_representative=REP_ID), Scenario.MARKET_ACCESS,
                [], [represented], None)
    later = ends + dt.timedelta(microseconds=1)
    years = clean_years(CATALOG, case.scenario)
    assert case.decide().outcome is Outcome.DENY
    assert case.decide(now=later).outcome is Outcome.ALLOW
    assert time_signature([], [represented], None, years, NOW) != time_signature(
        [], [represented], None, years, later)


@given(case=cases(), roles=st.lists(st.sampled_from(["subject", "legal_representative"]),
                                    min_size=1, max_size=2, unique=True),
       fallback=st.sampled_from([Outcome.ALLOW, Outcome.RESTRICT, Outcome.REVIEW, Outcome.DENY]))
def test_a_withheld_role_that_the_scenario_targets_is_never_decided_clean(
    case: Case, roles: list[str], fallback: Outcome
) -> None:
    """Rule 11: never ALLOW or GREEN_CHANNEL, never below the fallback or REVIEW, never
    below what the visible entries give, always degraded."""
    withheld = [Withheld(role=r, reason="key_not_allowed_persons") for r in roles]
    targeted = withheld_targets(CATALOG, case.scenario, withheld)
    shown = case.decide()
    d = case.decide(withheld=targeted, fallback=fallback)
    if not targeted:
        assert d == shown
        return
    assert d.outcome not in (Outcome.ALLOW, Outcome.GREEN_CHANNEL) and d.degraded
    assert d.outcome.severity >= max(fallback.severity, Outcome.REVIEW.severity)
    if shown.outcome is not Outcome.GREEN_CHANNEL:
        assert d.outcome.severity >= shown.outcome.severity
    assert all(m.effect is not Effect.GREEN_CHANNEL for m in d.measures)
