"""What a monthly report shows, read from the list service's admin API: the month's
figures over all departments and for each department, and the catalogue's names for the
codes they count."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import requests

from credit_check._exceptions import ConfigurationError, ServiceUnavailable
from credit_check._ids import mask_id, validate_id_number
from credit_check._models import CST

DUE_DAY = 15  # the report is due before the 15th of the following month
TIMEOUT = 30.0
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_ID_NUMBER = re.compile(r"[0-9]{17}[0-9Xx]")

SCENARIOS = {"licensing": "行政许可", "qualification": "资质认定", "procurement": "政府采购",
             "bidding": "招标投标", "subsidy": "财政资金补助", "honor": "评先评优",
             "market_access": "市场准入", "public_resource": "公共资源交易"}
OUTCOMES = {"deny": "禁止/限制", "review": "从严审核", "restrict": "限制便利",
            "allow": "允许", "green_channel": "绿色通道（容缺受理）"}
KINDS = {"decision": "核查", "outcome": "办理结果", "post_check": "补查",
         "case_opened": "受理"}


def parse_month(text: str | None, today: dt.date | None = None) -> str:
    """``YYYY-MM``, by default the month before ``today`` (China Standard Time).

    Raises:
        ValueError: not a month, with what to give instead.
    """
    if text is None:
        first = (today or dt.datetime.now(CST).date()).replace(day=1)
        return (first - dt.timedelta(days=1)).strftime("%Y-%m")
    match = _MONTH.fullmatch(text.strip())
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 2000:
        raise ValueError(f"--month must be YYYY-MM, e.g. 2026-11; got {text[:40]!r}")
    return match[0]


def due_date(month: str) -> dt.date:
    """The 15th of the month after ``month``: the report is due before it."""
    year, number = int(month[:4]), int(month[5:7])
    return dt.date(year + number // 12, number % 12 + 1, DUE_DAY)


def mask_ids(text: str | None) -> str:
    """``text`` with anything that is a valid 身份证号码 masked (a case id may embed one)."""

    def mask(match: re.Match[str]) -> str:
        try:
            validate_id_number(match[0])
        except ValueError:
            return match[0]
        return mask_id(match[0])

    return _ID_NUMBER.sub(mask, text or "")


@dataclass
class MonthlyData:
    """One month's figures: ``overall`` and each department's, as the stats call gives."""

    month: str
    service: str
    generated_at: dt.datetime
    overall: dict[str, Any]
    departments: dict[str, dict[str, Any]]
    list_names: dict[str, str] = field(default_factory=dict)
    measure_names: dict[str, str] = field(default_factory=dict)
    scenario_names: dict[str, str] = field(default_factory=lambda: dict(SCENARIOS))
    catalog_version: str | None = None

    @property
    def due(self) -> dt.date:
        return due_date(self.month)

    def as_json(self) -> dict[str, Any]:
        return {"month": self.month, "due_before": self.due.isoformat(),
                "service": self.service, "generated_at": self.generated_at.isoformat(),
                "catalog_version": self.catalog_version, "overall": self.overall,
                "departments": self.departments}


class _Admin:
    """GET calls with the admin key on one session."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {admin_key}"

    def get(self, path: str, **params: str) -> dict[str, Any]:
        url = self.base_url + path
        try:
            resp = self.session.get(url, params=params, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ServiceUnavailable(f"cannot reach the list service at {self.base_url}: "
                                     f"{type(exc).__name__}") from exc
        if resp.status_code in (401, 403):
            raise ConfigurationError(
                f"the list service at {self.base_url} refused the admin key "
                f"({resp.status_code}); give the service's admin key with --admin-key or "
                "CREDIT_CHECK_ADMIN_KEY")
        if resp.status_code != 200:
            detail = ""
            with contextlib.suppress(ValueError):
                detail = str(resp.json().get("detail", ""))[:300]
            raise ServiceUnavailable(f"{path}: the list service answered {resp.status_code}"
                                     + (f": {detail}" if detail else ""))
        try:
            body: dict[str, Any] = resp.json()
        except ValueError:
            raise ServiceUnavailable(f"{path}: the answer is not JSON; is {self.base_url} "
                                     "a credit-check list service?") from None
        return body

    def close(self) -> None:
        self.session.close()


def gather(base_url: str, admin_key: str, month: str,
           now: dt.datetime | None = None) -> MonthlyData:
    """The month's figures from the service: over all departments, then one call per
    department (its breakdowns and its unchecked cases).

    Raises:
        ConfigurationError: the admin key was refused.
        ServiceUnavailable: the service cannot be reached or answered an error.
    """
    admin = _Admin(base_url, admin_key)
    try:
        overall = admin.get("/v1/admin/stats", month=month)
        names = sorted({r["department"] for r in overall["by_department"]}
                       | {r["department"] for r in overall["coverage"]["by_department"]})
        departments = {name: admin.get("/v1/admin/stats", month=month, department=name)
                       for name in names}
        data = MonthlyData(month, admin.base_url, now or dt.datetime.now(CST), overall,
                           departments)
        try:
            answer = admin.get("/v1/catalog")
        except ServiceUnavailable:
            answer = {}  # no catalogue loaded: codes are shown without names
        catalog = answer.get("catalog") or {}
        data.catalog_version = catalog.get("version")
        data.list_names = {d["code"]: d.get("name", "") for d in catalog.get("lists", [])}
        data.measure_names = {m["code"]: m.get("name", "") for m in catalog.get("measures", [])}
        for s in catalog.get("scenarios") or []:  # a catalogue may name its scenarios
            if isinstance(s, dict) and s.get("code") and s.get("name_zh"):
                data.scenario_names[s["code"]] = s["name_zh"]
        return data
    finally:
        admin.close()
