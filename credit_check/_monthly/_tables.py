"""The report's tables, built once from the gathered figures and written by both the HTML
and the Excel writer: each a bilingual title, bilingual headers and rows of plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from credit_check._monthly._gather import KINDS, OUTCOMES, MonthlyData, mask_ids

Cell = str | int | float | None


@dataclass(frozen=True)
class Table:
    key: str
    title_zh: str
    title_en: str
    headers: list[tuple[str, str]]
    rows: list[list[Cell]]
    note: str = ""

    @property
    def sheet(self) -> str:
        """Its worksheet's name (Excel allows 31 characters)."""
        return SHEETS.get(self.key, self.key)[:31]


SHEETS = {"outcomes": "结果 Outcomes", "scenarios": "场景 Scenarios", "lists": "名单 Lists",
          "measures": "措施 Measures", "regions": "地区 Regions", "days": "每日 Days",
          "records": "记录 Records", "unchecked": "未核查办件 Unchecked"}


def percent(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.1f}%"


def overview(s: dict[str, Any]) -> Table:
    total, coverage, degraded = s["total"], s["coverage"], s["degraded"]
    rows: list[list[Cell]] = [
        ["核查次数", "checks", total["checks"]],
        ["命中名单", "checks with a list entry", total["hits"]],
        ["实施措施", "measures applied", total["measures"]],
        ["降级决定", "degraded decisions", total["degraded"]],
        ["降级比例", "degraded share", percent(degraded["share"])],
        ["补查", "post-checks", degraded["post_checks"]],
        ["补查命中", "post-checks with a list entry", degraded["post_check_hits"]],
        ["办件数", "cases handled", coverage["cases_handled"]],
        ["已核查办件", "cases checked", coverage["cases_checked"]],
        ["核查覆盖率", "coverage", percent(coverage["ratio"])],
        ["未核查办件", "cases handled without a check", coverage["unchecked_total"]],
    ]
    return Table("overview", "总体情况", "Overview", [("指标", "figure"), ("", ""),
                                                   ("数值", "value")], rows)


def departments(data: MonthlyData) -> Table:
    coverage = {r["department"]: r for r in data.overall["coverage"]["by_department"]}
    rows: list[list[Cell]] = []
    for name, s in data.departments.items():
        c = coverage.get(name, {})
        t = s["total"]
        rows.append([name, t["checks"], t["hits"], t["measures"], t["degraded"],
                     c.get("cases_handled", 0), c.get("cases_checked", 0),
                     percent(c.get("ratio"))])
    return Table("departments", "各部门情况", "By department",
                 [("部门", "department"), ("核查", "checks"), ("命中", "hits"),
                  ("措施", "measures"), ("降级", "degraded"), ("办件", "cases"),
                  ("已核查", "checked"), ("覆盖率", "coverage")], rows)


_COUNTS = [("核查", "checks"), ("命中", "hits"), ("措施", "measures"), ("降级", "degraded")]


def _counted(r: dict[str, Any]) -> list[Cell]:
    return [r["checks"], r["hits"], r["measures"], r["degraded"]]


def breakdowns(data: MonthlyData, s: dict[str, Any]) -> list[Table]:
    """The month's breakdowns of one stats answer (all departments, or one)."""
    scenario_names = data.scenario_names
    return [
        Table("outcomes", "按核查结果", "By outcome", [("结果", "outcome"), *_COUNTS],
              [[f"{OUTCOMES.get(r['outcome'], r['outcome'])} {r['outcome']}", *_counted(r)]
               for r in s["by_outcome"]]),
        Table("scenarios", "按应用场景", "By scenario", [("场景", "scenario"), *_COUNTS],
              [[f"{scenario_names.get(r['scenario'], r['scenario'])} {r['scenario']}",
                *_counted(r)] for r in s["by_scenario"]]),
        Table("lists", "按名单", "By list", [("名单代码", "list"), ("名单名称", "name"),
                                          ("核查", "checks"), ("降级", "degraded")],
              [[r["list_code"], data.list_names.get(r["list_code"], ""), r["checks"],
                r["degraded"]] for r in s["by_list"]]),
        Table("measures", "按惩戒激励措施", "By measure",
              [("措施代码", "measure"), ("措施名称", "name"), ("实施次数", "checks"),
               ("降级", "degraded")],
              [[r["measure"], data.measure_names.get(r["measure"], ""), r["checks"],
                r["degraded"]] for r in s["by_measure"]]),
        Table("regions", "按行政区划", "By region", [("区划代码", "region"), *_COUNTS],
              [[r["region"] or "（未填 / not given）", *_counted(r)] for r in s["by_region"]]),
        Table("days", "每日核查", "By day", [("日期", "day"), *_COUNTS],
              [[r["day"], *_counted(r)] for r in s["by_day"]]),
        Table("records", "按记录类型", "Records by kind", [("类型", "kind"), ("记录", "records")],
              [[f"{KINDS.get(r['kind'], r['kind'])} {r['kind']}", r["records"]]
               for r in s["by_kind"]]),
    ]


def unchecked(s: dict[str, Any]) -> Table:
    coverage = s["coverage"]
    shown = len(coverage["unchecked"])
    note = ("" if shown == coverage["unchecked_total"] else
            f"共 {coverage['unchecked_total']} 件，列出最早的 {shown} 件 / "
            f"{coverage['unchecked_total']} in all, the first {shown} listed")
    return Table("unchecked", "未核查办件（请跟踪核实）", "Cases handled without a check",
                 [("部门", "department"), ("办件编号", "case"), ("决定编号", "decision"),
                  ("场景", "scenario"), ("记录类型", "reported by"), ("时间", "time")],
                 [[u.get("department"), mask_ids(u.get("case_id")) or "—",
                   u.get("decision_id") or "", u.get("scenario"),
                   KINDS.get(u.get("kind") or "", u.get("kind")), u.get("reported_at")]
                  for u in coverage["unchecked"]], note)
