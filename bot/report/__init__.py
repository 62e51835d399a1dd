"""Reports over the database: per pairing and per agent metrics, comparisons, a leaderboard,
the AgreeMate paper's tables, text/Markdown/JSON, CSV/JSON-lines export and PNG charts.

Everything is computed from stored negotiations (``bot.store``), so our tournaments and the
imported AgreeMate reference runs are reported the same way, side by side. Every metric
(``bot.negotiation.metrics.METRIC_KEYS``) is summarised with mean, median, n and a 95% interval
(Student-t; Wilson for yes/no metrics), per pairing (one tournament's buyer x seller) and per
agent in a seat (bias is signed from the buyer's side in every row: +1 = the buyer got its
target). Per-agent rows add ``surplus_share``: the share of the zone of agreement the agent
took in its own seat.

The modules, in the order data flows through them:

    data.py      ReportData, load_report_data: tournaments, negotiations, turns from a Store
    stats.py     summaries (mean, median, n, interval), pairing groups and labels
    compare.py   CoT / personality / scale comparisons; the Bradley-Terry leaderboard
    paper.py     the AgreeMate paper's comparisons (experiments beside the published runs)
    build.py     build_report: the whole report as one JSON-ready dict
    tables.py    the report as tables: text, Markdown, JSON (render)
    export.py    one flat row per negotiation: CSV or JSON lines
    charts.py    PNG charts (matplotlib, imported only when drawing)
"""

from bot.report.build import build_report
from bot.report.charts import ACT_COLOURS, write_plots
from bot.report.compare import COMPARE_KEYS, bradley_terry, comparisons, leaderboard
from bot.report.data import ReportData, load_report_data, select_tournaments
from bot.report.export import EXPORT_COLUMNS, export_rows, write_export
from bot.report.paper import paper_comparisons
from bot.report.stats import metric_keys, summarise, wilson_interval
from bot.report.tables import Table, fmt, fmt_pct, paper_tables, render, report_tables

__all__ = ["ACT_COLOURS", "COMPARE_KEYS", "EXPORT_COLUMNS", "ReportData", "Table",
           "bradley_terry", "build_report", "comparisons", "export_rows", "fmt", "fmt_pct",
           "leaderboard", "load_report_data", "metric_keys", "paper_comparisons", "paper_tables",
           "render", "report_tables", "select_tournaments", "summarise", "wilson_interval",
           "write_export", "write_plots"]
