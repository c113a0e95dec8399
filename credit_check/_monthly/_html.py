"""The monthly report as one printable HTML page (A4, Chinese first), every value escaped."""

from __future__ import annotations

from html import escape

from credit_check._monthly._gather import MonthlyData
from credit_check._monthly._tables import Table, breakdowns, departments, overview, unchecked

_CSS = """
@page { size: A4; margin: 16mm 14mm; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei",
       "PingFang SC", sans-serif; font-size: 10.5pt; color: #111; max-width: 190mm;
       margin: 0 auto; }
h1 { font-size: 17pt; margin: 0 0 2mm; } h2 { font-size: 13pt; margin: 7mm 0 2mm; }
h3 { font-size: 11pt; margin: 4mm 0 1mm; }
.en { color: #555; font-weight: normal; font-size: 85%; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 3mm; }
th, td { border: 1px solid #999; padding: 1.2mm 2mm; text-align: left; vertical-align: top; }
th { background: #eee; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr { break-inside: avoid; } .meta td { border: none; padding: 0.5mm 2mm 0.5mm 0; }
.note, .empty { color: #555; font-size: 9pt; }
section.department { break-before: page; }
@media print { th { -webkit-print-color-adjust: exact; print-color-adjust: exact; } }
"""


def _cell(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="n">{value}</td>'
    return f"<td>{escape('' if value is None else str(value))}</td>"


def _table(t: Table, level: str = "h3") -> str:
    head = "".join(f"<th>{escape(zh)}<br><span class=en>{escape(en)}</span></th>"
                   for zh, en in t.headers)
    title = (f"<{level}>{escape(t.title_zh)} <span class=en>{escape(t.title_en)}</span>"
             f"</{level}>")
    if not t.rows:
        return title + '<p class="empty">无 / none</p>'
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in t.rows)
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def render(data: MonthlyData) -> str:
    """The whole report as an HTML document."""
    year, month = data.month.split("-")
    due = data.due
    meta = [("统计月份", "month", f"{year}年{int(month)}月 ({data.month})"),
            ("报送截止", "due", f"{due.year}年{due.month}月{due.day}日前 (before {due})"),
            ("数据来源", "source", data.service),
            ("名单措施目录", "catalogue", data.catalog_version or "—"),
            ("生成时间", "generated", data.generated_at.strftime("%Y-%m-%d %H:%M"))]
    parts = [
        "<!doctype html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>逢办必查月度监测报告 {escape(data.month)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>“逢办必查”联合奖惩月度监测报告 <span class=en>Monthly monitoring report</span>"
        "</h1>",
        '<table class="meta">' + "".join(
            f"<tr><td>{escape(zh)} <span class=en>{escape(en)}</span></td>"
            f"<td>{escape(value)}</td></tr>" for zh, en, value in meta) + "</table>",
        _table(overview(data.overall), "h2"),
        _table(departments(data), "h2"),
        "<h2>全部部门明细 <span class=en>All departments</span></h2>",
        *(_table(t) for t in breakdowns(data, data.overall)),
        _table(unchecked(data.overall)),
    ]
    for name, stats in data.departments.items():
        parts.append('<section class="department">')
        parts.append(f"<h2>{escape(name)} <span class=en>department</span></h2>")
        parts.append(_table(overview(stats)))
        parts += [_table(t) for t in breakdowns(data, stats) if t.key != "days"]
        parts.append(_table(unchecked(stats)))
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
