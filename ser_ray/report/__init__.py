"""Report stage: an experiment directory (ledger + study.json) → report.md, figures,
results.csv and the live progress.md.

Reads the folder only through `ser_ray.experiment`; imports neither the study or training
stages nor Ray nor torch, so a report can be rebuilt anywhere the directory is readable.
"""

from ser_ray.report.markdown import render_progress, write_progress, write_report

__all__ = ["render_progress", "write_progress", "write_report"]
