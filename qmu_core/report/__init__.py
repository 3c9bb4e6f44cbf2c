"""Before / after / oracle comparison.

The metrics table and summary (`tables`), and a run's folder with summary.json, report.md,
index.html and the plots (`folder.publish`).
"""

from qmu_core.report.folder import html_page, publish
from qmu_core.report.tables import (
    HEADLINE,
    HEADLINE_METRICS,
    LABELS,
    Report,
    attack_rows,
    attack_tables,
    compare,
    markdown,
    models_summary,
    notes,
    plot,
    rounded,
    run_warnings,
    table_rows,
    title,
    unlearning_warnings,
    write_summary,
)

__all__ = [
    "HEADLINE",
    "HEADLINE_METRICS",
    "LABELS",
    "Report",
    "attack_rows",
    "attack_tables",
    "compare",
    "html_page",
    "markdown",
    "models_summary",
    "notes",
    "plot",
    "publish",
    "rounded",
    "run_warnings",
    "table_rows",
    "title",
    "unlearning_warnings",
    "write_summary",
]
