"""The rulebook (DESIGN §3): a pure function from entries, catalogue, transaction and time to
a Decision. No I/O and no clock of its own: the caller hands it ``now``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

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
    Scenario,
    Subject,
    SubjectKind,
    Target,
    Transaction,
    Withheld,
)

_EFFECT_OUTCOME = {
    Effect.DENY: Outcome.DENY,
    Effect.REVIEW: Outcome.REVIEW,
    Effect.RESTRICT: Outcome.RESTRICT,
    Effect.GREEN_CHANNEL: Outcome.GREEN_CHANNEL,
}
_IGNORED = frozenset({EntryStatus.REPAIRED, EntryStatus.REMOVED, EntryStatus.EXPIRED})
_OUTCOME_WORDS = {
    Outcome.DENY: "不予办理 / refuse",
    Outcome.REVIEW: "从严审核 / strict manual review",
    Outcome.RESTRICT: "限制便利措施 / proceed without facilitation",
    Outcome.ALLOW: "正常办理 / proceed",
    Outcome.GREEN_CHANNEL: "绿色通道 / green channel",
}


# Why the service withheld a role (§9.1), as the reasons and the status say it.
WITHHELD_CAUSES = {
    "key_not_allowed_persons": ("本部门密钥无权查看自然人信用信息",
                                "this department key may not see natural persons' entries"),
}
_ROLE_WORDS = {
    "subject": ("主体", "the subject"),
    "legal_representative": ("法定代表人", "the legal representative"),
}


def withheld_cause(reason: str) -> tuple[str, str]:
    """The cause of a withholding in Chinese and English (an unknown reason is named)."""
    return WITHHELD_CAUSES.get(
        reason, (f"服务未提供相关信息（{reason or '未说明'}）",
                 f"the service withheld it ({reason or 'no reason given'})"))


def withheld_targets(catalog: Catalog, scenario: Scenario,
                     withheld: Iterable[Withheld]) -> tuple[Withheld, ...]:
    """The withheld roles that a measure of ``scenario`` targets (rule 11); a role that no
    measure of the scenario targets cannot change the decision and is left out."""
    targeted = {str(m.target) for m in catalog.measures if scenario in m.scenarios}
    return tuple(dict.fromkeys(w for w in withheld if w.role in targeted))


@dataclass(frozen=True, slots=True)
class _Judged:
    entry: ListEntry
    counts: bool  # applies measures now
    suspended: bool  # objection pending on a list that suspends: no measure, but no reward
    kind: ListKind  # the catalogue's kind for the list; the entry's own only for unknown lists


def judge_entry(entry: ListEntry, catalog: Catalog, now: dt.datetime) -> _Judged | None:
    """How one entry stands at ``now``; None when it must be ignored entirely (rules 2 and 4)."""
    if entry.status in _IGNORED or not entry.is_in_period(now):
        return None
    definition = catalog.list_definition(entry.list_code)
    # The catalogue is the authority on what a list is: an entry that calls a watch list
    # "red" must not earn a reward.
    kind = definition.kind if definition else entry.list_kind
    if entry.status is EntryStatus.OBJECTION_PENDING:
        suspends = definition.suspend_on_objection if definition else True
        return _Judged(entry, counts=not suspends, suspended=suspends, kind=kind)
    return _Judged(entry, counts=True, suspended=False, kind=kind)


def years_before(moment: dt.datetime, years: int) -> dt.datetime:
    """``moment`` minus whole calendar years (29 February falls back to 28)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def _list_name(catalog: Catalog, code: str) -> str:
    definition = catalog.list_definition(code)
    return f"「{definition.name}」({code})" if definition else f"({code})"


def _period(entry: ListEntry) -> str:
    start = entry.effective_from.date().isoformat()
    end = entry.effective_until.date().isoformat() if entry.effective_until else "长期 / open-ended"
    return f"{start} – {end}"


def _entry_reason(j: _Judged, catalog: Catalog, who: str, who_en: str) -> str:
    e = j.entry
    text = (
        f"{who}在{_list_name(catalog, e.list_code)}名单上（发布部门：{e.issuing_department}；"
        f"依据：{e.basis_document or '—'}；有效期：{_period(e)}）。"
        f" / {who_en} is on the {j.kind.value} list {e.list_code} "
        f"(issued by {e.issuing_department}; basis {e.basis_document or '-'}; "
        f"effective {_period(e)})."
    )
    if j.suspended and j.kind is ListKind.RED:
        text += (
            " 该条目异议处理中，暂不作为激励依据。"
            " / An objection to this entry is pending, so it grants no reward meanwhile."
        )
    elif j.suspended:
        text += (
            " 该条目异议处理中，联合惩戒措施暂停执行，但不适用绿色通道。"
            " / An objection to this entry is pending, so its measures are suspended;"
            " it still rules out the green channel."
        )
    elif e.status is EntryStatus.OBJECTION_PENDING:
        text += (
            " 该条目异议处理中，但该名单在异议期间不暂停执行。"
            " / An objection is pending, but this list is not suspended during it."
        )
    if catalog.list_definition(e.list_code) is None:
        text += (
            " 该名单不在当前措施目录中，不适用任何措施。"
            " / This list is not in the current catalogue; no measure applies."
        )
    return text


def _applied(m: Measure, entry: ListEntry | None) -> AppliedMeasure:
    return AppliedMeasure(
        code=m.code,
        name=m.name,
        effect=m.effect,
        legal_basis=m.legal_basis,
        implementing_department=m.implementing_department,
        target=m.target,
        list_code=entry.list_code if entry else None,
        entry_id=entry.entry_id if entry else None,
        params=dict(m.params),
    )


def _measure_reason(a: AppliedMeasure) -> str:
    whom = "法定代表人" if a.target is Target.LEGAL_REPRESENTATIVE else "主体"
    whom_en = "the legal representative" if a.target is Target.LEGAL_REPRESENTATIVE else "the subject"
    return (
        f"对{whom}适用措施 {a.code}「{a.name}」（{a.effect.value}；法律依据：{a.legal_basis}；"
        f"实施部门：{a.implementing_department}）。 / Measure {a.code} applies to {whom_en} "
        f"({a.effect.value}; legal basis {a.legal_basis}; implemented by "
        f"{a.implementing_department})."
    )


def _remedy(entries: Iterable[ListEntry]) -> str:
    departments = "、".join(sorted({e.issuing_department for e in entries})) or "发布部门"
    return (
        f"如对名单信息有异议，可向发布部门（{departments}）提出异议申请，异议处理期间按规定暂停或继续"
        "执行惩戒措施；已纠正失信行为、履行相关义务的，可向发布部门或信用平台申请信用修复，修复后"
        f"不再作为惩戒依据。 / To dispute an entry, file an objection with the issuing department "
        f"({departments}); once the conduct is corrected and obligations are met, apply to that "
        "department or the credit platform for credit repair, after which the entry is no longer "
        "used for any measure."
    )


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
) -> Decision:
    """Apply the rulebook to one subject.

    Args:
        subject: who is checked.
        transaction: the case; its scenario selects the measures.
        catalog: the measure catalogue; no measure outside it is ever applied (rule 1).
        now: the decision time; entry periods are judged against it (rule 2).
        decision_id: the id the Decision will carry.
        entries: the subject's list entries, of any status.
        representative_entries: entries that concern the subject's legal representative: the
            person's own entries and entries of organisations that person represents.
        clean_since: start of the subject's clean record, for clean-record green channels.
        data_version: the list data version the entries were read at.
        degraded: whether the entries may be incomplete (stale data); carried to the Decision.
        withheld: roles whose entries the service withheld and that a measure of this
            scenario targets (:func:`withheld_targets`). Rule 11: the outcome is then never
            ALLOW or GREEN_CHANNEL but at least ``fallback`` and REVIEW, and degraded.
        fallback: the scenario's fallback outcome (rule 9), for ``withheld``.

    Returns:
        The Decision: outcome, applied measures, matched entries and bilingual reasons.
    """
    scenario = transaction.scenario
    judged = [j for e in entries if (j := judge_entry(e, catalog, now)) is not None]
    rep_judged = [
        j for e in representative_entries if (j := judge_entry(e, catalog, now)) is not None
    ]
    rep = subject.legal_representative
    reasons: list[str] = []
    for j in judged:
        reasons.append(_entry_reason(j, catalog, "主体", "The subject"))
    applied: list[AppliedMeasure] = []
    rep_hits: list[ListEntry] = []
    denied_by: list[ListEntry] = []
    blockers = [
        j.entry for j in judged if (j.counts or j.suspended) and j.kind is not ListKind.RED
    ]
    for m in catalog.measures:
        if scenario not in m.scenarios:
            continue
        if m.effect is Effect.GREEN_CHANNEL:
            if withheld:
                continue  # no reward on what we were not shown (rule 11)
            grant = _green_channel(m, judged, clean_since, now)
            if grant is None:
                continue
            entry, why = grant
            if blockers:
                names = "、".join(_list_name(catalog, b.list_code) for b in blockers)
                reasons.append(
                    f"因存在失信或重点关注名单记录{names}（含异议处理中的记录），不适用{m.code}"
                    f"「{m.name}」。 / Measure {m.code} ({m.name}) is not granted: the subject has "
                    "a black or watch list entry (pending objections included)."
                )
                continue
            reasons.append(why)
            applied.append(_applied(m, entry))
            continue
        pool = rep_judged if m.target is Target.LEGAL_REPRESENTATIVE else judged
        triggers = [j.entry for j in pool if j.counts and j.entry.list_code in m.list_codes]
        if not triggers:
            continue
        applied.append(_applied(m, triggers[0]))
        if m.effect is Effect.DENY:
            # every triggering entry, not just the first: lifting one alone does not lift the DENY
            denied_by.extend(triggers)
        if m.target is Target.LEGAL_REPRESENTATIVE:
            for e in triggers:
                if e not in rep_hits:
                    rep_hits.append(e)
    for e in rep_hits:
        shown = mask_id(rep.id) if rep else "—"
        if e.subject_kind is SubjectKind.ORGANIZATION:
            reasons.append(
                f"法定代表人（{shown}）是{_list_name(catalog, e.list_code)}名单上主体 {e.subject_id} "
                f"的法定代表人（发布部门：{e.issuing_department}；依据：{e.basis_document or '—'}）。"
                f" / The legal representative ({shown}) represents {e.subject_id}, which is on "
                f"the list {e.list_code} (issued by {e.issuing_department})."
            )
        else:
            reasons.append(
                _entry_reason(_Judged(e, True, False, e.list_kind), catalog, f"法定代表人（{shown}）",
                              f"The legal representative ({shown})")
            )
    reasons.extend(_measure_reason(a) for a in applied)
    outcome = Outcome.most_severe(_EFFECT_OUTCOME[a.effect] for a in applied)
    matches = [j.entry for j in judged] + [e for e in rep_hits if e not in (j.entry for j in judged)]
    if withheld:
        outcome = Outcome.most_severe((outcome, fallback, Outcome.REVIEW))
        degraded = True
        reasons.extend(_withheld_reason(w, outcome) for w in withheld)
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
    remedy = None
    if outcome is Outcome.DENY:
        remedy = _remedy(denied_by)
    return Decision(
        decision_id=decision_id,
        outcome=outcome,
        subject=subject,
        transaction=transaction,
        measures=applied,
        matches=matches,
        reasons=reasons,
        remedy=remedy,
        degraded=degraded,
        catalog_version=catalog.version,
        data_version=data_version,
        decided_at=now,
    )


def _withheld_reason(w: Withheld, outcome: Outcome) -> str:
    zh, en = withheld_cause(w.reason)
    who_zh, who_en = _ROLE_WORDS.get(w.role, (w.role, w.role))
    return (
        f"{zh}：服务未提供{who_zh}的名单信息，本场景的措施涉及{who_zh}，不能视为无记录，"
        f"按降级规则处理：{_OUTCOME_WORDS[outcome]}。 / The service withheld the entries of "
        f"{who_en} ({en}); this scenario's measures target {who_en}, so the subject cannot "
        f"be taken as clean: the fallback ({outcome.value}) applies."
    )


def _green_channel(
    m: Measure, judged: Sequence[_Judged], clean_since: dt.datetime | None, now: dt.datetime
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


def clean_years(catalog: Catalog, scenario: Scenario) -> tuple[int, ...]:
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
    reuse a decision's content while the signature holds."""
    sig = [e.status not in _IGNORED and e.is_in_period(now) for e in entries]
    sig += [e.status not in _IGNORED and e.is_in_period(now) for e in representative_entries]
    if clean_since is not None:
        sig += [clean_since <= years_before(now, y) for y in years]
    return tuple(sig)


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
