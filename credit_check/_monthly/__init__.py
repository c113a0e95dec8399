"""``credit-check report monthly``: the monthly monitoring report (跟踪、监测、统计), per
department, from the list service's admin API — gathered (``_gather``), then written as
printable HTML (``_html``) or an Excel workbook (``_xlsx``)."""
