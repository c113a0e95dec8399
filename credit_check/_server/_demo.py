"""Fictional demo data for the sandbox: generated names and identifiers with valid check
characters (never real companies or people), spread over every list and entry status, and
the named showcase subjects the demo, the examples and the tests refer to.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from importlib import resources
from typing import Any

from credit_check._ids import (
    USCC_ALPHABET,
    id_number_check_char,
    org_code_check_char,
    uscc_check_char,
)
from credit_check._models import CST

BULK_SUBJECTS = 1200
_REGIONS = ["350100", "350200", "350500", "330100", "320500", "440300", "510100", "420100"]
_WORDS = ["恒信", "瑞丰", "华晟", "星河", "远航", "启明", "宏图", "安泰", "锦程", "鼎盛", "沐阳",
          "青禾", "云帆", "泽润", "立方", "嘉和"]
_TRADES = ["建设工程", "商贸", "信息科技", "食品", "物流", "环保", "机械制造", "劳务", "医药",
           "装饰"]
_SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦许何吕施张孔曹严华金魏陶姜"
_GIVEN = ["示明", "例华", "演芳", "测伟", "模静", "范强", "样敏", "虚磊", "拟洋", "设婷"]
_ISSUERS = {
    "court.judgment_defaulter": ("某市中级人民法院", "（2025）闽01执{n}号"),
    "tax.major_violation": ("国家税务总局某市税务局", "税稽罚〔2025〕{n}号"),
    "procurement.serious_violation": ("某市财政局", "财采罚〔2025〕{n}号"),
    "market.serious_violation": ("某市市场监督管理局", "市监严违〔2025〕{n}号"),
    "labor.wage_arrears": ("某市人力资源和社会保障局", "人社欠薪〔2025〕{n}号"),
    "safety.serious_violation": ("某市应急管理局", "应急失信〔2025〕{n}号"),
    "market.abnormal_operation": ("某市市场监督管理局", "市监异常〔2025〕{n}号"),
    "tax.a_grade": ("国家税务总局某市税务局", "2025年度A级纳税人名单第{n}号"),
    "customs.advanced_certified": ("某海关", "海关AEO〔2025〕{n}号"),
    "province.honest_model": ("某省发展和改革委员会", "诚信示范〔2025〕{n}号"),
}
_KINDS = {"court.judgment_defaulter": "black", "tax.major_violation": "black",
          "procurement.serious_violation": "black", "market.serious_violation": "black",
          "labor.wage_arrears": "black", "safety.serious_violation": "black",
          "market.abnormal_operation": "watch", "tax.a_grade": "red",
          "customs.advanced_certified": "red", "province.honest_model": "red"}
_STATUSES = ["active"] * 6 + ["objection_pending", "repaired", "removed", "expired"]


def demo_catalog() -> dict[str, Any]:
    """The shipped demo catalogue (credit_check/data/demo_catalog.json)."""
    text = resources.files("credit_check.data").joinpath("demo_catalog.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def make_uscc(rng: random.Random) -> str:
    body = "MA" + "".join(rng.choice(USCC_ALPHABET) for _ in range(6))
    base = "91" + rng.choice(_REGIONS) + body + org_code_check_char(body)
    return base + uscc_check_char(base)


def make_id_number(rng: random.Random) -> str:
    born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(365 * 50))
    base = rng.choice(_REGIONS) + born.strftime("%Y%m%d") + f"{rng.randrange(1000):03d}"
    return base + id_number_check_char(base)


def _org_name(rng: random.Random) -> str:
    return f"示范市{rng.choice(_WORDS)}{rng.choice(_TRADES)}有限公司（虚构）"


def _person_name(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + rng.choice(_GIVEN)


# The showcase: name -> (kind, [(list code, status, until days from today or None)]).
_SHOWCASE_PLAN: dict[str, tuple[str, list[tuple[str, str, int | None]]]] = {
    "court_defaulter_rep": ("person", []),
    "court_defaulter_org": ("organization", [("court.judgment_defaulter", "active", None)]),
    "wage_arrears_org": ("organization", [("labor.wage_arrears", "active", 700)]),
    "safety_violator_org": ("organization", [("safety.serious_violation", "active", 365)]),
    "watch_org": ("organization", [("market.abnormal_operation", "active", None)]),
    "a_grade_org": ("organization", [("tax.a_grade", "active", 300)]),
    "red_and_black_org": ("organization", [("tax.a_grade", "active", 300),
                                           ("market.serious_violation", "active", 900)]),
    "tax_violator_org": ("organization", [("tax.major_violation", "active", 1000)]),
    "objection_tax_org": ("organization", [("tax.major_violation", "objection_pending", 800)]),
    "objection_court_org": ("organization",
                            [("court.judgment_defaulter", "objection_pending", None)]),
    "repaired_org": ("organization", [("procurement.serious_violation", "repaired", 600)]),
    "expired_org": ("organization", [("tax.major_violation", "expired", None)]),
    "lapsed_org": ("organization", [("procurement.serious_violation", "active", -30)]),
    "clean_3y_org": ("organization", []),
    "clean_recent_org": ("organization", []),
    "unknown_org": ("organization", []),
    "new_org_with_listed_rep": ("organization", []),
    "black_person": ("person", [("court.judgment_defaulter", "active", None)]),
}


def _make_showcase() -> dict[str, str]:
    rng = random.Random("credit-check showcase")
    return {name: make_id_number(rng) if kind == "person" else make_uscc(rng)
            for name, (kind, _) in _SHOWCASE_PLAN.items()}


SHOWCASE: dict[str, str] = _make_showcase()
"""Showcase subject name -> identifier (stable across runs)."""


def showcase() -> list[dict[str, Any]]:
    """The showcase subjects (fictional) with the lists they are on and each entry's
    status: what ``GET /v1/admin/showcase`` and ``serve --demo --print-showcase`` show."""
    return [{"name": name, "id": SHOWCASE[name], "kind": kind,
             "entries": [{"list_code": code, "status": status} for code, status, _ in plan]}
            for name, (kind, plan) in _SHOWCASE_PLAN.items()]


def _entry(n: int, list_code: str, subject_id: str, kind: str, name: str, status: str,
           start: dt.date, until: dt.date | None, rep: str | None) -> dict[str, Any]:
    issuer, basis = _ISSUERS[list_code]
    return {
        "entry_id": f"demo-{n:05d}", "list_code": list_code, "list_kind": _KINDS[list_code],
        "subject_id": subject_id, "subject_kind": kind, "name": name,
        "issuing_department": issuer, "basis_document": basis.format(n=n),
        "reason": "示例数据（虚构）/ fictional demo data", "listed_on": start.isoformat(),
        "effective_from": start.isoformat(),
        "effective_until": until.isoformat() if until else None,
        "status": status, "legal_representative_id": rep,
    }


def build(today: dt.date | None = None) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """Entries and subject rows ``(id, kind, name, rep_id, clean_since)`` of the demo data."""
    today = today or dt.datetime.now(CST).date()
    rng = random.Random(20260301)
    entries: list[dict[str, Any]] = []
    subjects: list[tuple[Any, ...]] = []
    n = 0
    rep_of = {"court_defaulter_org": SHOWCASE["court_defaulter_rep"]}
    for name, (kind, plan) in _SHOWCASE_PLAN.items():
        sid = SHOWCASE[name]
        label = _person_name(rng) if kind == "person" else _org_name(rng)
        clean = {"clean_3y_org": today - dt.timedelta(days=365 * 4 + 30),
                 "clean_recent_org": today - dt.timedelta(days=300)}.get(name)
        subjects.append((sid, kind, label, rep_of.get(name),
                         clean.isoformat() if clean else None))
        for list_code, status, days in plan:
            n += 1
            start = today - dt.timedelta(days=200 if days is None or days > 0 else 500)
            until = None if days is None else today + dt.timedelta(days=days)
            entries.append(_entry(n, list_code, sid, kind, label, status, start, until,
                                  rep_of.get(name)))
    codes = list(_KINDS)
    for i in range(BULK_SUBJECTS):
        person = i % 6 == 5
        sid = make_id_number(rng) if person else make_uscc(rng)
        kind = "person" if person else "organization"
        label = _person_name(rng) if person else _org_name(rng)
        rep = None
        if not person:
            rep = make_id_number(rng)
            subjects.append((rep, "person", _person_name(rng), None, None))
        clean = today - dt.timedelta(days=rng.randrange(30, 3000))
        subjects.append((sid, kind, label, rep, clean.isoformat()))
        lists = [codes[i % len(codes)]]
        if i % 50 == 7:  # a few subjects on both a red and a black list
            lists = ["province.honest_model", "market.serious_violation"]
        for list_code in lists:
            if person and _KINDS[list_code] != "black":
                continue
            n += 1
            start = today - dt.timedelta(days=rng.randrange(30, 900))
            until = (start + dt.timedelta(days=rng.randrange(365, 1500))
                     if rng.random() < 0.7 else None)
            status = _STATUSES[i % len(_STATUSES)]
            entries.append(_entry(n, list_code, sid, kind, label, status, start, until, rep))
    return entries, subjects
