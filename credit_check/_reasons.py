"""The bilingual texts of the rulebook: why each entry, person and measure counts, the
remedy of a DENY, and the outcomes in words. Pure functions of their arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from credit_check._catalog import Catalog, Layer
from credit_check._codes import ListKind, Target, role_words
from credit_check._models import AppliedMeasure, EntryStatus, ListEntry, Outcome

OUTCOME_WORDS = {
    Outcome.DENY: "不予办理 / refuse",
    Outcome.REVIEW: "从严审核 / strict manual review",
    Outcome.RESTRICT: "限制便利措施 / proceed without facilitation",
    Outcome.ALLOW: "正常办理 / proceed",
    Outcome.GREEN_CHANNEL: "绿色通道 / green channel",
}


@dataclass(frozen=True, slots=True)
class Judged:
    """How one entry stands at the decision time."""

    entry: ListEntry
    counts: bool  # applies measures now
    suspended: bool  # objection pending on a list that suspends: no measure, but no reward
    kind: ListKind  # the catalogue's kind for the list; the entry's own only for unknown lists


def list_name(catalog: Catalog, code: str) -> str:
    definition = catalog.list_definition(code)
    return f"「{definition.name}」({code})" if definition else f"({code})"


def period(entry: ListEntry) -> str:
    start = entry.effective_from.date().isoformat()
    end = entry.effective_until.date().isoformat() if entry.effective_until else "长期 / open-ended"
    return f"{start} – {end}"


def entry_reason(j: Judged, catalog: Catalog, who: str, who_en: str) -> str:
    e = j.entry
    text = (
        f"{who}在{list_name(catalog, e.list_code)}名单上（发布部门：{e.issuing_department}；"
        f"依据：{e.basis_document or '—'}；有效期：{period(e)}）。"
        f" / {who_en} is on the {j.kind.value} list {e.list_code} "
        f"(issued by {e.issuing_department}; basis {e.basis_document or '-'}; "
        f"effective {period(e)})."
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


def via_reason(catalog: Catalog, who: str, who_en: str, role: str, e: ListEntry) -> str:
    """A person who holds ``role`` in an organisation on a list."""
    if role == Target.LEGAL_REPRESENTATIVE:
        zh_role, en = "法定代表人", f"represents {e.subject_id}"
    else:
        zh_role, en_role = role_words(role)
        en = f"is {en_role} of {e.subject_id}"
    return (
        f"{who}是{list_name(catalog, e.list_code)}名单上主体 {e.subject_id} 的{zh_role}"
        f"（发布部门：{e.issuing_department}；依据：{e.basis_document or '—'}）。"
        f" / {who_en} {en}, which is on the list {e.list_code} (issued by "
        f"{e.issuing_department}; basis {e.basis_document or '-'})."
    )


def layer_words(layer: Layer | None) -> tuple[str, str]:
    """Where a measure comes from, in Chinese and English ("" for the unnamed base)."""
    if layer is None:
        return "", ""
    zh = f"；来源：{layer.name}（{layer.issuing_body}，{layer.source_document}）"
    en = f"; from {layer.name} ({layer.level}, {layer.issuing_body}, {layer.source_document})"
    return zh, en


def measure_reason(a: AppliedMeasure, catalog: Catalog) -> str:
    whom, whom_en = role_words(a.target)
    layer = next((x for x in catalog.layers if x.code == a.layer), None)
    src_zh, src_en = layer_words(layer)
    extra_zh = extra_en = ""
    if a.grounds:
        extra_zh += f"；实施事由：{a.grounds}"
        extra_en += f"; grounds: {a.grounds}"
    if a.initiating_department:
        extra_zh += f"；发起部门：{a.initiating_department}"
        extra_en += f"; initiated by {a.initiating_department}"
    if a.period_months:
        extra_zh += f"；惩戒期限：{a.period_months}个月"
        extra_en += f"; period {a.period_months} months"
    if a.evidence:
        extra_zh += "；证据材料：" + "、".join(a.evidence)
        extra_en += "; evidence: " + "; ".join(a.evidence)
    return (
        f"对{whom}适用措施 {a.code}「{a.name}」（{a.effect}；法律依据：{a.legal_basis}；"
        f"实施部门：{a.implementing_department}{extra_zh}{src_zh}）。 / Measure {a.code} "
        f"applies to {whom_en} ({a.effect}; legal basis {a.legal_basis}; implemented by "
        f"{a.implementing_department}{extra_en}{src_en})."
    )


def unsupported_reason(code: str, name: str, problem: str, e: ListEntry,
                       outcome: Outcome) -> str:
    return (
        f"措施 {code}「{name}」本版本无法执行（{problem}），而名单 {e.list_code} 上有相关有效记录"
        f"（{e.entry_id}）：不能视为无措施，按降级规则处理：{OUTCOME_WORDS[outcome]}；请升级 "
        f"credit-check。 / Measure {code} ({name}) cannot be applied by this version "
        f"({problem}) and an effective entry on its list {e.list_code} matches "
        f"({e.entry_id}): it is not skipped; the fallback ({outcome.value}) applies. "
        "Upgrade credit-check."
    )


def unknown_scenario_reason(scenario: str, outcome: Outcome) -> str:
    return (
        f"场景 {scenario!r} 既不是已知场景，也不在当前措施目录中，无法确定适用的措施，按降级规则"
        f"处理：{OUTCOME_WORDS[outcome]}。 / The scenario {scenario!r} is neither a known "
        "scenario nor one the current catalogue names, so no measure can be selected: "
        f"the fallback ({outcome.value}) applies. Check the scenario code."
    )


def remedy(entries: Iterable[ListEntry]) -> str:
    departments = "、".join(sorted({e.issuing_department for e in entries})) or "发布部门"
    return (
        f"如对名单信息有异议，可向发布部门（{departments}）提出异议申请，异议处理期间按规定暂停或继续"
        "执行惩戒措施；已纠正失信行为、履行相关义务的，可向发布部门或信用平台申请信用修复，修复后"
        f"不再作为惩戒依据。 / To dispute an entry, file an objection with the issuing department "
        f"({departments}); once the conduct is corrected and obligations are met, apply to that "
        "department or the credit platform for credit repair, after which the entry is no longer "
        "used for any measure."
    )
