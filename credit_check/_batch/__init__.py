"""``credit-check check-file``: batch checks of the subjects of a CSV or Excel file (e.g. the
bidders of a tender), with a progress bar, a summary and a report of every row."""
