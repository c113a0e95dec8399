"""The answers the middleware gives in the application's place, and the X-Credit-Check header.

Every error is ``application/problem+json`` (RFC 9457) with a bilingual title and detail;
decisions are rendered with ``Decision.public_dict()`` so natural persons' ids are masked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from credit_check._checker_types import DecisionGroup
from credit_check._models import Decision, Outcome

HEADER = "X-Credit-Check"
PROBLEM_TYPE = "application/problem+json"
_BASE = "urn:credit-check:problem:"


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete response given instead of calling the application."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def reason(self) -> str:
        """The status line's reason phrase."""
        return _REASONS.get(self.status, "")


_REASONS = {202: "Accepted", 400: "Bad Request", 403: "Forbidden", 413: "Content Too Large",
            415: "Unsupported Media Type", 503: "Service Unavailable"}


def _reply(status: int, data: dict[str, Any], content_type: str = PROBLEM_TYPE,
           header: str | None = None) -> Reply:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = [("Content-Type", content_type if content_type != "application/json"
                else "application/json; charset=utf-8"),
               ("Content-Length", str(len(body)))]
    if header is not None:
        headers.append((HEADER, header))
    return Reply(status, tuple(headers), body)


def problem(status: int, kind: str, title: tuple[str, str], detail: tuple[str, str],
            header: str | None = None, **extra: Any) -> Reply:
    """A problem+json reply; ``title`` and ``detail`` are (Chinese, English) pairs."""
    data: dict[str, Any] = {
        "type": _BASE + kind,
        "title": f"{title[0]} / {title[1]}",
        "status": status,
        "detail": f"{detail[0]} / {detail[1]}",
        "title_zh": title[0], "title_en": title[1],
        "detail_zh": detail[0], "detail_en": detail[1],
    }
    data.update(extra)
    return _reply(status, data, header=header)


def members(result: Decision | DecisionGroup) -> Sequence[Decision]:
    """The decisions of a result: one, or a group's members."""
    return result.decisions if isinstance(result, DecisionGroup) else (result,)


def header_value(result: Decision | DecisionGroup, *, shadow: bool = False) -> str:
    """``<outcome>; decision=<id>`` (``decisions=<id>,<id>`` for a group), ``; degraded``
    when any decision was degraded, ``; shadow`` in shadow mode."""
    if isinstance(result, DecisionGroup):
        ids = ",".join(d.decision_id for d in result.decisions)
        value = f"{result.outcome.value}; decisions={ids}"
        degraded = result.degraded
    else:
        value = f"{result.outcome.value}; decision={result.decision_id}"
        degraded = result.degraded
    if degraded:
        value += "; degraded"
    if shadow:
        value += "; shadow"
    return value


def denied(result: Decision | DecisionGroup) -> Reply:
    """The 403 for a DENY: measures with legal basis and implementing department, each
    denying entry with its issuing department, and how to object or apply for repair."""
    decisions = members(result)
    deny = [d for d in decisions if d.outcome is Outcome.DENY]
    measures = []
    entries = []
    remedies = []
    for d in deny:
        for m in d.measures:
            measures.append({
                "code": m.code, "name": m.name, "effect": m.effect.value,
                "legal_basis": m.legal_basis,
                "implementing_department": m.implementing_department,
                "list_code": m.list_code, "entry_id": m.entry_id,
            })
        public = d.public_dict()
        for e in public["matches"]:
            entries.append({key: e.get(key) for key in (
                "entry_id", "list_code", "list_kind", "subject_id", "issuing_department",
                "basis_document", "status", "effective_from", "effective_until")})
        if d.remedy and d.remedy not in remedies:
            remedies.append(d.remedy)
    degraded = any(d.degraded for d in decisions)
    extra: dict[str, Any] = {
        "outcome": Outcome.DENY.value,
        "decision_id": None if isinstance(result, DecisionGroup) else result.decision_id,
        "decision_ids": [d.decision_id for d in decisions],
        "degraded": degraded,
        "measures": measures,
        "entries": entries,
        "remedy": "\n".join(remedies) or None,
        "decisions": [d.public_dict() for d in decisions],
    }
    zh = "根据联合惩戒措施，本事项不予办理。" + ("（信用服务不可用，按降级规则处理。）" if degraded else "")
    en = ("Under the joint punishment measures listed, this transaction cannot proceed."
          + (" (The credit service was unavailable; the fallback rule applied.)" if degraded
             else ""))
    if remedies:
        zh += "异议与信用修复途径见 remedy。"
        en += " See remedy for how to object or apply for credit repair."
    return problem(403, "denied", ("信用核查未通过", "Credit check denied"), (zh, en),
                   header=header_value(result), **extra)


def held(result: Decision | DecisionGroup) -> Reply:
    """The 202 for a REVIEW held for manual review (``review="hold"``)."""
    decisions = members(result)
    data = {
        "status": "held",
        "title": "已转人工审核 / Held for manual review",
        "detail": "信用核查结果需人工审核，受理后将另行通知。 / The credit check calls for a "
                  "manual review; the case is held until an officer decides.",
        "outcome": Outcome.REVIEW.value,
        "decision_id": None if isinstance(result, DecisionGroup) else result.decision_id,
        "decision_ids": [d.decision_id for d in decisions],
        "decisions": [d.public_dict() for d in decisions],
    }
    return _reply(202, data, content_type="application/json", header=header_value(result))


def invalid_id(label: str, problem_code: str, message: str) -> Reply:
    """The 400 for an identifier that fails validation (the message masks person ids)."""
    return problem(400, "invalid-subject-id", ("主体标识无效", "Invalid subject identifier"),
                   (f"字段 {label} 的标识无效：{problem_code}。",
                    f"The identifier in {label} is invalid ({problem_code}): {message}"),
                   field=label, problem=problem_code, message=message)


def missing_id(label: str) -> Reply:
    """The 400 for a guarded request without the identifier."""
    return problem(400, "missing-subject-id", ("缺少主体标识", "Missing subject identifier"),
                   (f"请求缺少字段 {label}。", f"The request has no value in {label}."),
                   field=label, problem="missing")


def bad_field(label: str, message: str) -> Reply:
    """The 400 for a field of the wrong shape or length (case id, item code, …)."""
    return problem(400, "invalid-field", ("字段无效", "Invalid field"),
                   (f"字段 {label} 无效。", f"{label}: {message}"),
                   field=label, problem="invalid", message=message)


def bad_body(status: int, message: str, expected: Sequence[str]) -> Reply:
    """The 400 (malformed) or 415 (unsupported content type) for a body the rule reads."""
    if status == 415:
        return problem(415, "unsupported-media-type", ("不支持的内容类型",
                       "Unsupported media type"),
                       (f"需要 {' 或 '.join(expected)} 格式的请求体。", message),
                       expected=list(expected))
    return problem(400, "malformed-body", ("请求体格式错误", "Malformed request body"),
                   (f"无法按 {' 或 '.join(expected)} 解析请求体。", message),
                   expected=list(expected))


def bad_length() -> Reply:
    """The 400 for a ``Content-Length`` that is no plain number of bytes."""
    return problem(400, "invalid-content-length", ("请求头无效", "Invalid Content-Length"),
                   ("请求头 Content-Length 须为字节数。",
                    "The Content-Length header must be a plain number of bytes."),
                   field="header:content-length", problem="invalid")


def too_large(limit: int) -> Reply:
    """The 413 for a body over ``max_body`` on a guarded route."""
    return problem(413, "body-too-large", ("请求体过大", "Request body too large"),
                   (f"请求体超过 {limit} 字节上限。", f"The body exceeds the {limit}-byte limit."),
                   limit=limit)


# What the check could not do: record the decision (the outbox failed), or complete at all.
_UNRECORDED = ("信用核查无法记录，请稍后重试。",
               "The credit check could not be recorded; retry later.")
_INCOMPLETE = ("信用核查无法完成，请稍后重试。",
               "The credit check could not be completed; retry later.")


def unavailable(*, unrecorded: bool) -> Reply:
    """The 503 of ``on_error="unavailable"``: the check (or its record, which is part of
    it: 逢办必查 keeps the query record) could not be completed."""
    return problem(503, "check-unavailable", ("信用核查暂不可用", "Credit check unavailable"),
                   _UNRECORDED if unrecorded else _INCOMPLETE, header="error",
                   cause="record" if unrecorded else "check")


def refused(*, unrecorded: bool) -> Reply:
    """The 403 of ``on_error="deny"``: the check (or its record) could not be completed,
    so the request is refused."""
    zh, en = _UNRECORDED if unrecorded else _INCOMPLETE
    return problem(403, "check-failed", ("信用核查未完成，不予办理",
                                         "Credit check not completed; refused"),
                   (zh, en), header="error", cause="record" if unrecorded else "check")
