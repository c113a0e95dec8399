"""The rulebook (DESIGN §3): a pure function from entries, catalogue, transaction and time to
a Decision. No I/O and no clock of its own: the caller hands it ``now``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from credit_check._codes import Target, role_words
from credit_check._ids import mask_id
from credit_check._models import (
    AppliedMeasure,
    Catalog,
    Decision,
    Effect,
    EntryStatus,
    ListEntry,
    ListKind,
    Measure,
    Outcome,
    Subject,
    SubjectKind,
    Transaction,
    Withheld,
)
from credit_check._reasons import (
    OUTCOME_WORDS,
    Judged,
    entry_reason,
    list_name,
    measure_reason,
    remedy,
    unknown_scenario_reason,
    unsupported_reason,
    via_reason,
)

_EFFECT_OUTCOME: dict[str, Outcome] = {
    Effect.DENY: Outcome.DENY,
    Effect.REVIEW: Outcome.REVIEW,
    Effect.RESTRICT: Outcome.RESTRICT,
    Effect.GREEN_CHANNEL: Outcome.GREEN_CHANNEL,
}
_IGNORED = frozenset({EntryStatus.REPAIRED, EntryStatus.REMOVED, EntryStatus.EXPIRED})
_OUTCOME_WORDS = OUTCOME_WORDS
# An entry of an organisation in which a person holds a role, with that role.
RoleEntry = tuple[ListEntry, str]


# Why the service withheld a role (§9.1), as the reasons and the status say it.
WITHHELD_CAUSES = {
    "key_not_allowed_persons": ("本部门密钥无权查看自然人信用信息",
                                "this department key may not see natural persons' entries"),
}


@dataclass(frozen=True, slots=True)
class PersonEntries:
    """What one related person of an organisation brings to a decision.

    Attributes:
        role: the role the person holds in the checked organisation.
        person: the person, for the reasons (shown masked); None when unknown.
        entries: the person's own entries.
        via: entries of organisations in which the person holds a role, with that role.
    """

    role: str
    person: Subject | None
    entries: Sequence[ListEntry] = ()
    via: Sequence[RoleEntry] = ()


def withheld_cause(reason: str) -> tuple[str, str]:
    """The cause of a withholding in Chinese and English (an unknown reason is named)."""
    return WITHHELD_CAUSES.get(
        reason, (f"服务未提供相关信息（{reason or '未说明'}）",
                 f"the service withheld it ({reason or 'no reason given'})"))


def withheld_targets(catalog: Catalog, scenario: str,
                     withheld: Iterable[Withheld]) -> tuple[Withheld, ...]:
    """The withheld roles that a measure of ``scenario`` targets (rule 11); a role that no
    measure of the scenario targets cannot change the decision and is left out. A measure
    with a target this version does not know may concern any role."""
    measures = [m for m in catalog.measures if scenario in m.scenarios]
    if any(not isinstance(m.target, Target) for m in measures):
        return tuple(dict.fromkeys(withheld))
    targeted = {str(m.target) for m in measures}
    return tuple(dict.fromkeys(w for w in withheld if w.role in targeted))


def judge_entry(entry: ListEntry, catalog: Catalog, now: dt.datetime) -> Judged | None:
    """How one entry stands at ``now``; None when it must be ignored entirely (rules 2 and 4)."""
    if entry.status in _IGNORED or not entry.is_in_period(now):
        return None
    definition = catalog.list_definition(entry.list_code)
    # The catalogue is the authority on what a list is: an entry that calls a watch list
    # "red" must not earn a reward.
    kind = definition.kind if definition else entry.list_kind
    if entry.status is EntryStatus.OBJECTION_PENDING:
        suspends = definition.suspend_on_objection if definition else True
        return Judged(entry, counts=not suspends, suspended=suspends, kind=kind)
    return Judged(entry, counts=True, suspended=False, kind=kind)


def years_before(moment: dt.datetime, years: int) -> dt.datetime:
    """``moment`` minus whole calendar years (29 February falls back to 28)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def _applied(m: Measure, entry: ListEntry | None) -> AppliedMeasure:
    return AppliedMeasure(
        # only measures this version can apply are applied: their codes are known
        code=m.code, name=m.name, effect=Effect(m.effect), legal_basis=m.legal_basis,
        implementing_department=m.implementing_department, target=Target(m.target),
        list_code=entry.list_code if entry else None,
        entry_id=entry.entry_id if entry else None, params=dict(m.params), layer=m.layer,
        grounds=m.grounds, evidence=list(m.evidence),
        initiating_department=m.initiating_department, period_months=m.period_months,
    )


@dataclass(frozen=True, slots=True)
class _Hit:
    """A counting entry in a measure's pool: whose it is and how it reaches the target."""

    judged: Judged
    person: PersonEntries | None  # None: the subject itself
    via_role: str | None  # the role held in the listed organisation, when reached through it


class _People:
    """The subject's and the related persons' judged entries, and the pool of each measure."""

    def __init__(self, judged: list[Judged], subject_via: list[tuple[Judged, str]],
                 persons: list[tuple[PersonEntries, list[Judged], list[tuple[Judged, str]]]]
                 ) -> None:
        self.judged = judged
        self.subject_via = subject_via
        self.persons = persons

    def pool(self, m: Measure) -> list[_Hit]:
        """Every entry that can trigger ``m`` (its target's, or anybody's for a target this
        version does not know)."""
        via = set(m.effective_via)
        known = isinstance(m.target, Target)
        out: list[_Hit] = []
        if not known or m.target is Target.SUBJECT:
            out += [_Hit(j, None, None) for j in self.judged]
            out += [_Hit(j, None, r) for j, r in self.subject_via if r in via or not known]
        for p, own, pv in self.persons:
            if known and p.role != m.target:
                continue
            out += [_Hit(j, p, None) for j in own]
            out += [_Hit(j, p, r) for j, r in pv if r in via or not known]
        return out


def _judge_all(entries: Iterable[ListEntry], catalog: Catalog, now: dt.datetime) -> list[Judged]:
    return [j for e in entries if (j := judge_entry(e, catalog, now)) is not None]


def _judge_via(entries: Iterable[RoleEntry], catalog: Catalog, now: dt.datetime
               ) -> list[tuple[Judged, str]]:
    return [(j, r) for e, r in entries if (j := judge_entry(e, catalog, now)) is not None]


def legacy_persons(subject: Subject, representative_entries: Sequence[ListEntry]
                   ) -> list[PersonEntries]:
    """``representative_entries`` (the schema-1 form: the legal representative's own
    entries and those of organisations naming the person) as a :class:`PersonEntries`."""
    if not representative_entries:
        return []
    rep = subject.legal_representative
    own = [e for e in representative_entries if e.subject_kind is SubjectKind.PERSON]
    orgs = [(e, str(Target.LEGAL_REPRESENTATIVE)) for e in representative_entries
            if e.subject_kind is not SubjectKind.PERSON]
    return [PersonEntries(Target.LEGAL_REPRESENTATIVE, rep, own, orgs)]


def scenario_known(catalog: Catalog, scenario: str) -> bool:
    """Whether the scenario is a known one or one the catalogue names or uses."""
    return scenario in catalog.scenario_codes()


def decide(
    *,
    subject: Subject,
    transaction: Transaction,
    catalog: Catalog,
    now: dt.datetime,
    decision_id: str,
    entries: Sequence[ListEntry] = (),
    representative_entries: Sequence[ListEntry] = (),
    clean_since: dt.datetime | None = None,
    data_version: str | None = None,
    degraded: bool = False,
    withheld: Collection[Withheld] = (),
    fallback: Outcome = Outcome.REVIEW,
    persons: Sequence[PersonEntries] = (),
    subject_via: Sequence[RoleEntry] = (),
    measures: Sequence[Measure] | None = None,
) -> Decision:
    """Apply the rulebook to one subject.

    Args:
        subject: who is checked.
        transaction: the case; its scenario and region select the measures.
        catalog: the measure catalogue; no measure outside it is ever applied (rule 1).
        now: the decision time; entry periods are judged against it (rule 2).
        decision_id: the id the Decision will carry.
        entries: the subject's list entries, of any status.
        representative_entries: entries that concern the subject's legal representative: the
            person's own entries and entries of organisations that person represents (the
            schema-1 form of ``persons``).
        clean_since: start of the subject's clean record, for clean-record green channels.
        data_version: the list data version the entries were read at.
        degraded: whether the entries may be incomplete (stale data); carried to the Decision.
        withheld: roles whose entries the service withheld and that a measure of this
            scenario targets (:func:`withheld_targets`). Rule 11: the outcome is then never
            ALLOW or GREEN_CHANNEL but at least ``fallback`` and REVIEW, and degraded.
        fallback: the scenario's fallback outcome (rule 9), for ``withheld``, measures this
            version cannot apply, and a scenario nobody knows.
        persons: the organisation's related persons, by role (DESIGN §9.5).
        subject_via: when the subject is a person, entries of organisations in which the
            person holds a role, with the role.
        measures: the measures of the scenario and region (``Catalog.measures_for``),
            when the caller has them at hand.

    Returns:
        The Decision: outcome, applied measures, matched entries and bilingual reasons.
    """
    scenario = transaction.scenario
    if measures is None:
        if not scenario_known(catalog, scenario):
            return unknown_scenario_decision(
                subject=subject, transaction=transaction, catalog=catalog, now=now,
                decision_id=decision_id, data_version=data_version, fallback=fallback)
        measures = catalog.measures_for(scenario, transaction.region)
    people = _People(
        _judge_all(entries, catalog, now), _judge_via(subject_via, catalog, now),
        [(p, _judge_all(p.entries, catalog, now), _judge_via(p.via, catalog, now))
         for p in [*persons, *legacy_persons(subject, representative_entries)]])
    judged = people.judged
    reasons = [entry_reason(j, catalog, "主体", "The subject") for j in judged]
    unsupported: list[tuple[Measure, str, ListEntry]] = []
    hits: list[_Hit] = []
    for m in measures:
        problem = m.problem
        if problem is not None:
            # Red lists trigger rewards only: a reward this version cannot grant is simply
            # not granted; anything else is never skipped (rule 11).
            found = [h for h in people.pool(m) if h.judged.counts
                     and h.judged.kind is not ListKind.RED
                     and h.judged.entry.list_code in m.list_codes]
            if found:
                unsupported.append((m, problem, found[0].judged.entry))
                hits += found
    applied: list[AppliedMeasure] = []
    denied_by: list[ListEntry] = []
    blockers = [j.entry for j in judged if (j.counts or j.suspended) and j.kind is not ListKind.RED]
    for m in measures:
        if m.problem is not None:
            continue
        if m.effect is Effect.GREEN_CHANNEL:
            if withheld or unsupported:
                continue  # no reward on what we were not shown or cannot judge (rule 11)
            grant = _green_channel(m, judged, clean_since, now)
            if grant is None:
                continue
            entry, why = grant
            if blockers:
                names = "、".join(list_name(catalog, b.list_code) for b in blockers)
                reasons.append(
                    f"因存在失信或重点关注名单记录{names}（含异议处理中的记录），不适用{m.code}"
                    f"「{m.name}」。 / Measure {m.code} ({m.name}) is not granted: the subject has "
                    "a black or watch list entry (pending objections included)."
                )
                continue
            reasons.append(why)
            applied.append(_applied(m, entry))
            continue
        triggers = [h for h in people.pool(m) if h.judged.counts
                    and h.judged.entry.list_code in m.list_codes]
        if not triggers:
            continue
        applied.append(_applied(m, triggers[0].judged.entry))
        if m.effect is Effect.DENY:
            # every triggering entry, not just the first: lifting one alone does not lift the DENY
            denied_by.extend(h.judged.entry for h in triggers)
        hits += triggers
    reasons += _hit_reasons(hits, catalog)
    reasons.extend(measure_reason(a, catalog) for a in applied)
    outcome = Outcome.most_severe(_EFFECT_OUTCOME[a.effect] for a in applied)
    own = [j.entry for j in judged]
    matches = own + list(dict.fromkeys(h.judged.entry for h in hits
                                       if h.judged.entry not in own))
    if withheld or unsupported:
        outcome = Outcome.most_severe((outcome, fallback, Outcome.REVIEW))
        degraded = True
        reasons.extend(_withheld_reason(w, outcome) for w in withheld)
        reasons.extend(unsupported_reason(m.code, m.name, problem, e, outcome)
                       for m, problem, e in unsupported)
    elif not applied:
        if judged:
            reasons.append(
                "上述名单记录在本场景下无目录规定的措施，正常办理。 / No catalogue measure applies "
                "to these entries in this scenario; proceed normally."
            )
        else:
            reasons.append(
                "未发现有效的红黑名单记录，正常办理。 / No effective red or black list entry; "
                "proceed normally."
            )
    reasons.append(f"结论：{_OUTCOME_WORDS[outcome]}。 / Outcome: {outcome.value}.")
    return Decision(
        decision_id=decision_id,
        outcome=outcome,
        subject=subject,
        transaction=transaction,
        measures=applied,
        matches=matches,
        reasons=reasons,
        remedy=remedy(denied_by) if outcome is Outcome.DENY else None,
        degraded=degraded,
        catalog_version=catalog.version,
        data_version=data_version,
        decided_at=now,
    )


def _hit_reasons(hits: Iterable[_Hit], catalog: Catalog) -> list[str]:
    # Why each entry reaching the subject through a person (or an organisation) counts;
    # the subject's own entries are explained already.
    out: list[str] = []
    seen: set[tuple[str, str | None, str | None]] = set()
    for h in hits:
        e = h.judged.entry
        if h.person is None and h.via_role is None:
            continue
        key = (e.entry_id, h.person.role if h.person else None, h.via_role)
        if key in seen:
            continue
        seen.add(key)
        if h.person is None:
            who, who_en = "主体", "The subject"
        else:
            zh, en = role_words(h.person.role)
            shown = mask_id(h.person.person.id) if h.person.person else "—"
            who, who_en = f"{zh}（{shown}）", f"{en[0].upper()}{en[1:]} ({shown})"
        if h.via_role is not None:
            out.append(via_reason(catalog, who, who_en, h.via_role, e))
        else:
            out.append(entry_reason(Judged(e, True, False, h.judged.kind), catalog, who, who_en))
    return out


def _withheld_reason(w: Withheld, outcome: Outcome) -> str:
    zh, en = withheld_cause(w.reason)
    who_zh, who_en = role_words(w.role)
    return (
        f"{zh}：服务未提供{who_zh}的名单信息，本场景的措施涉及{who_zh}，不能视为无记录，"
        f"按降级规则处理：{_OUTCOME_WORDS[outcome]}。 / The service withheld the entries of "
        f"{who_en} ({en}); this scenario's measures target {who_en}, so the subject cannot "
        f"be taken as clean: the fallback ({outcome.value}) applies."
    )


def _green_channel(
    m: Measure, judged: Sequence[Judged], clean_since: dt.datetime | None, now: dt.datetime
) -> tuple[ListEntry | None, str] | None:
    days = m.params.get("commitment_days")
    zh = f"可容缺受理，申请人书面承诺在 {days} 日内补齐材料。" if days else ""
    en = f" Missing materials may be supplied within {days} days on a written commitment." if days else ""
    for j in judged:
        if j.counts and j.kind is ListKind.RED and j.entry.list_code in m.list_codes:
            return j.entry, (
                f"主体为守信激励对象（{j.entry.list_code}），适用措施 {m.code}「{m.name}」。{zh}"
                f" / The subject is on the red list {j.entry.list_code}: {m.name} applies.{en}"
            )
    years = m.clean_years
    if years is not None and clean_since is not None and clean_since <= years_before(now, years):
        return None, (
            f"主体自 {clean_since.date().isoformat()} 起连续{years}年无不良信用记录，适用措施 "
            f"{m.code}「{m.name}」。{zh} / The subject has had a clean record for {years} "
            f"years (since {clean_since.date().isoformat()}): {m.name} applies.{en}"
        )
    return None


def clean_years(catalog: Catalog, scenario: str) -> tuple[int, ...]:
    """The clean-record periods (years) of the scenario's green-channel measures."""
    return tuple(sorted({
        m.clean_years for m in catalog.measures
        if m.effect is Effect.GREEN_CHANNEL and m.clean_years is not None
        and scenario in m.scenarios
    }))


def time_signature(
    entries: Sequence[ListEntry],
    representative_entries: Sequence[ListEntry],
    clean_since: dt.datetime | None,
    years: Sequence[int],
    now: dt.datetime,
) -> tuple[bool, ...]:
    """Everything :func:`decide` reads from ``now`` apart from ``decided_at``: whether each
    entry counts at ``now`` (rules 2 and 4) and whether each clean-record period
    (:func:`clean_years`) is complete. Two moments with the same signature get the same
    outcome, measures, matches, reasons and remedy from the same inputs, so a caller may
    reuse a decision's content while the signature holds. ``representative_entries``:
    every entry of every related person (own and through organisations)."""
    sig = [e.status not in _IGNORED and e.is_in_period(now) for e in entries]
    sig += [e.status not in _IGNORED and e.is_in_period(now) for e in representative_entries]
    if clean_since is not None:
        sig += [clean_since <= years_before(now, y) for y in years]
    return tuple(sig)


def unknown_scenario_decision(
    *, subject: Subject, transaction: Transaction, catalog: Catalog, now: dt.datetime,
    decision_id: str, data_version: str | None, fallback: Outcome,
) -> Decision:
    """A scenario neither known nor named by the catalogue (a typo, most likely): no
    measure can be selected, so never ALLOW: the fallback, at least REVIEW, degraded."""
    outcome = Outcome.most_severe((fallback, Outcome.REVIEW))
    return Decision(
        decision_id=decision_id, outcome=outcome, subject=subject, transaction=transaction,
        reasons=[unknown_scenario_reason(transaction.scenario, outcome),
                 f"结论：{_OUTCOME_WORDS[outcome]}。 / Outcome: {outcome.value}."],
        degraded=True, catalog_version=catalog.version, data_version=data_version,
        decided_at=now,
    )


def fallback_decision(
    *,
    subject: Subject,
    transaction: Transaction,
    outcome: Outcome,
    now: dt.datetime,
    decision_id: str,
    catalog_version: str | None,
    data_version: str | None = None,
    cause: str = "",
) -> Decision:
    """The degraded Decision of rule 9: the scenario's fallback, marked and explained."""
    detail = f"（{cause}）" if cause else ""
    return Decision(
        decision_id=decision_id,
        outcome=outcome,
        subject=subject,
        transaction=transaction,
        reasons=[
            f"信用信息服务暂不可用{detail}，按本场景降级规则处理：{_OUTCOME_WORDS[outcome]}；"
            "已登记补查，服务恢复后将重新核查并反馈。 / The credit list service is unreachable"
            f"{' (' + cause + ')' if cause else ''}; the scenario's fallback ({outcome.value}) "
            "applies and the case is queued for a post-check when the service is back.",
        ],
        degraded=True,
        catalog_version=catalog_version,
        data_version=data_version,
        decided_at=now,
    )
