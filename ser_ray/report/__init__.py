"""Report stage: an experiment directory (ledger + study.json) → report.md, figures, results.csv.

Imports neither Ray nor torch, so a report can be rebuilt anywhere the directory is readable.
"""

from ser_ray.report.markdown import render_progress, write_report
from ser_ray.report.tables import (
    Completeness,
    Experiment,
    FactorialPivot,
    ablation_table,
    best_configuration,
    best_variant,
    completeness,
    factorial_pivot,
    failed_units,
    load_experiment,
    load_paper_results,
    missing_units,
    paper_row,
    paper_row_keys,
    paper_vs_ours,
    parameter_importance,
    per_class_recall_table,
    search_trials,
    selection_rule,
    top_trials,
    unit_frame,
    variant_summary,
)

__all__ = [
    "Completeness",
    "Experiment",
    "FactorialPivot",
    "ablation_table",
    "best_configuration",
    "best_variant",
    "completeness",
    "factorial_pivot",
    "failed_units",
    "load_experiment",
    "load_paper_results",
    "missing_units",
    "paper_row",
    "paper_row_keys",
    "paper_vs_ours",
    "parameter_importance",
    "per_class_recall_table",
    "render_progress",
    "search_trials",
    "selection_rule",
    "top_trials",
    "unit_frame",
    "variant_summary",
    "write_report",
]
