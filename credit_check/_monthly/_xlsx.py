"""The monthly report as an Excel workbook (openpyxl, the ``xlsx`` extra): an overview
sheet, then one sheet per breakdown with a row block for all departments and one for each
department, so that it can be filtered and summed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from credit_check._exceptions import ConfigurationError
from credit_check._monthly._gather import MonthlyData
from credit_check._monthly._tables import Table, breakdowns, departments, overview, unchecked

ALL = "全部部门 all"


def _openpyxl() -> Any:
    try:
        import openpyxl
    except ImportError:
        raise ConfigurationError("an .xlsx file needs openpyxl: pip install "
                                 "'credit-check[xlsx]' (or write HTML/CSV)") from None
    return openpyxl


def _headers(t: Table, first: list[str] | None = None) -> list[str]:
    return [*(first or []), *(f"{zh} {en}".strip() for zh, en in t.headers)]


def write(data: MonthlyData, path: Path) -> None:
    """Write the workbook to ``path``.

    Raises:
        ConfigurationError: openpyxl is not installed.
        OSError: the file cannot be written.
    """
    openpyxl = _openpyxl()
    from openpyxl.styles import Font

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "总览 Overview"
    sheet.append([f"“逢办必查”联合奖惩月度监测报告 {data.month}"])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append(["报送截止 due before", data.due.isoformat()])
    sheet.append(["数据来源 source", data.service])
    sheet.append(["名单措施目录 catalogue", data.catalog_version or ""])
    sheet.append(["生成时间 generated", data.generated_at.strftime("%Y-%m-%d %H:%M")])
    for table in (overview(data.overall), departments(data)):
        sheet.append([])
        sheet.append([f"{table.title_zh} {table.title_en}"])
        sheet.append(_headers(table))
        for row in table.rows:
            sheet.append(row)
    scopes = [(ALL, data.overall), *data.departments.items()]
    per_scope = [(name, [*breakdowns(data, stats), unchecked(stats)])
                 for name, stats in scopes]
    for i, first in enumerate(per_scope[0][1]):
        if first.key == "unchecked":
            scoped = [(n, tables[i]) for n, tables in per_scope[:1]]  # listed once, whole
        else:
            scoped = [(n, tables[i]) for n, tables in per_scope]
        ws = book.create_sheet(first.sheet)
        ws.append(_headers(first, ["范围 scope"]))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for scope, table in scoped:
            for row in table.rows:
                ws.append([scope, *row])
        if first.note:
            ws.append([])
            ws.append([first.note])
    for ws in book.worksheets:
        ws.column_dimensions["A"].width = 28
        for letter in "BCDEFGH":
            ws.column_dimensions[letter].width = 16
    book.save(path)
