"""Render an experiment directory as `report.md` (+ `figures/*.png`) and `results.csv`.

Rendering only: every number comes from `tables.py`, and everything is rebuilt from the
ledger and study.json alone, so a report written after a resume is the same as one written by
an uninterrupted run. Markdown is GitHub-flavoured; figures are linked relatively.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from ser_ray.report import plots, tables
from ser_ray.report.stats import SIGNIFICANCE_LEVEL
from ser_ray.report.tables import METRIC_LABELS, METRICS, Experiment

REPORT_FILE = "report.md"
RESULTS_FILE = "results.csv"
FIGURES_DIR = "figures"
COLLAPSE_AFTER = 10
SELECTION_RULES = {
    "last": "last epoch",
    "best-validation": "best validation epoch by (UA + WA) / 2",
    "best-test": "best test epoch by (UA + WA) / 2 — **OPTIMISTIC: selected on the test set**",
}
METRIC_NAMES = {"unweighted_accuracy": "unweighted accuracy", "weighted_accuracy":
                "weighted accuracy", "ua_wa_mean": "(UA + WA) / 2", "macro_f1": "macro F1"}


def write_report(experiment_dir: Path, *, featured: int = tables.FEATURED_VARIANTS) -> Path:
    """Write DIR/report.md, DIR/figures/*.png and DIR/results.csv; return the report's path.

    Args:
        experiment_dir: the study's directory (ledger.jsonl and study.json).
        featured: at most this many variants get a confusion matrix and learning curves.
    """
    experiment = tables.load_experiment(Path(experiment_dir))
    figures = experiment.directory / FIGURES_DIR
    tables.unit_frame(experiment).to_csv(experiment.directory / RESULTS_FILE, index=False)
    sections = [_title(experiment), _setup(experiment)]
    if experiment.rows:
        sections += [_design_section(experiment, figures),
                     _per_variant(experiment, figures, featured),
                     _paper_section(experiment), _failures(experiment)]
    else:
        sections.append("No unit has been recorded yet.")
    path = experiment.directory / REPORT_FILE
    path.write_text("\n\n".join(section for section in sections if section) + "\n",
                    encoding="utf-8")
    return path


def render_progress(experiment_dir: Path) -> str:
    """A short markdown progress summary: units done, best so far, failures, pruned."""
    experiment = tables.load_experiment(Path(experiment_dir))
    done = tables.completeness(experiment)
    lines = [f"## Progress: {experiment.study.get('name', experiment.directory.name)}", "",
             f"**{done.recorded} of {done.planned} units** recorded: {done.finished} finished, "
             f"{done.pruned} pruned; {done.failed} failed; {done.not_run} not run yet."]
    best = tables.best_variant(experiment)
    if best is not None:
        lines.append(f"Best so far by {_metric_label(experiment.objective)}: "
                     f"**{best['variant']}** {_score(best['mean'], best['sd'])} % over "
                     f"{best['units']} units.")
    failures = tables.failed_units(experiment)
    if not failures.empty:
        lines += ["", "Failed units:"]
        lines += [f"- {row.variant}, fold {row.fold}, seed {row.seed}: `{row.error_summary}`"
                  for row in failures.itertuples()]
    return "\n".join(lines) + "\n"


# ---- header --------------------------------------------------------------------------------

def _title(experiment: Experiment) -> str:
    study = experiment.study
    done = tables.completeness(experiment)
    lines = [f"# {study.get('name', experiment.directory.name)}"]
    if done.partial:
        lines += ["", f"> **{done.label}** — {done.failed} failed, {done.not_run} not run yet. "
                  "Every number below covers the recorded units only."]
    if study.get("description"):
        lines += ["", study["description"]]
    return "\n".join(lines)


def _setup(experiment: Experiment) -> str:
    study = experiment.study
    corpus = study.get("corpus") or {}
    done = tables.completeness(experiment)
    rows = [
        ("design", _design_line(experiment)),
        ("objective", f"{_metric_label(experiment.objective)} "
                      f"({METRIC_NAMES.get(experiment.objective, experiment.objective)}), "
                      f"{'maximised' if experiment.maximise else 'minimised'}"),
        ("units", f"{done.label}: {done.finished} finished, {done.pruned} pruned, "
                  f"{done.failed} failed, {done.not_run} not run"),
        ("corpus", f"{corpus.get('name', '?')}: {corpus.get('utterances', '?')} utterances, "
                   f"{corpus.get('speakers', '?')} speakers; manifest `{corpus.get('manifest')}`"),
        ("class selection", _inline_mapping(corpus.get("selection") or {})),
        ("class counts", ", ".join(f"{row.label} {row.utterances}"
                                   for row in tables.class_counts(experiment).itertuples())),
        ("protocol", _protocol_line(study.get("protocol") or {})),
        ("epoch selection", "; ".join(SELECTION_RULES.get(rule, rule)
                                      for rule in tables.selection_rules(experiment))),
        ("folds × seeds", f"folds {_listing(study.get('folds'))} × seeds "
                          f"{_listing(study.get('seeds'))}; {study.get('epochs', '?')} epochs"),
        ("model", f"`{(study.get('model') or {}).get('name')}` "
                  f"{_inline_mapping((study.get('model') or {}).get('options') or {})}"),
        ("hardware", _hardware_line(study.get("hardware") or {})),
        ("git commit", f"`{study['git_commit']}`" if study.get("git_commit")
         else "unknown (not a git checkout)"),
        ("started", str(study.get("started_at", "?"))),
    ]
    parts = ["## Setup", _table(rows, ["", "value"]), _feature_section(experiment),
             _packages_section(study.get("packages") or {}),
             _details("training settings", _table(sorted(
                 (key, json.dumps(value)) for key, value in (study.get("training") or {}).items()),
                 ["setting", "value"])),
             _skipped_section(experiment)]
    return "\n\n".join(part for part in parts if part)


def _design_line(experiment: Experiment) -> str:
    line = experiment.design
    if experiment.baseline:
        line += f", baseline `{experiment.baseline}`"
    factors = experiment.study.get("factors") or {}
    if factors:
        line += "; factors " + "; ".join(f"{name} ∈ {_listing(levels)}"
                                         for name, levels in factors.items())
    return line


def _protocol_line(protocol: dict[str, Any]) -> str:
    k = protocol.get("k")
    shape = f"{protocol.get('kind', '?')}" + (f", k = {k}" if k else "")
    description = protocol.get("description", "")
    if protocol.get("speaker_independent"):
        return (f"speaker-independent ({shape}): no test speaker is heard in training. "
                f"{description}")
    return (f"**SPEAKER-DEPENDENT** ({shape}): test speakers are also heard in training, which "
            f"inflates scores. {description}")


def _hardware_line(hardware: dict[str, Any]) -> str:
    gpus = ", ".join(hardware.get("gpus") or []) or "none"
    return f"{hardware.get('cpus', '?')} CPUs; GPUs: {gpus}; {hardware.get('platform', '?')}"


def _feature_section(experiment: Experiment) -> str:
    caches = tables.feature_caches(experiment)
    if caches.empty:
        return ""
    rows = [(f"`{row.cache_key}`", row.recipe, row.augmentations, row.rows, f"`{row.path}`")
            for row in caches.itertuples()]
    return "**Feature caches**\n\n" + _table(rows, ["cache key", "recipe", "augmentations",
                                                    "rows", "path"])


def _packages_section(packages: dict[str, str]) -> str:
    if not packages:
        return ""
    return "**Packages**: " + ", ".join(f"{name} {version}"
                                        for name, version in sorted(packages.items()))


def _skipped_section(experiment: Experiment) -> str:
    skipped = tables.skipped_inputs(experiment)
    if skipped.empty:
        return "**Skipped inputs**: none (scan and features read every input)."
    counts = tables.skipped_counts(experiment)
    listing = _table([(row.stage, f"`{row.path}`", row.reason_code, row.reason)
                      for row in skipped.itertuples()], ["stage", "path", "reason code", "reason"])
    summary = _table([(row.stage, row.reason_code, row.inputs) for row in counts.itertuples()],
                     ["stage", "reason code", "inputs"])
    return (f"**Skipped inputs**: {len(skipped)}\n\n{summary}\n\n"
            + (_details(f"all {len(skipped)} skipped inputs", listing)
               if len(skipped) > COLLAPSE_AFTER else listing))


# ---- design-specific results -----------------------------------------------------------------

def _design_section(experiment: Experiment, figures: Path) -> str:
    if experiment.design == "search":
        return _search_section(experiment, figures)
    parts = []
    if experiment.design == "factorial":
        parts.append(_factorial_section(experiment, figures))
    parts.append(_ablation_section(experiment, figures))
    return "\n\n".join(parts)


def _ablation_section(experiment: Experiment, figures: Path) -> str:
    table = tables.ablation_table(experiment)
    records = table.to_dict("records")
    headers = ["variant", "units", *[METRIC_LABELS[m] for m in METRICS], "params"]
    rows = [[_code(row["variant"]), _units(row),
             *[_score(row[f"{m}_mean"], row[f"{m}_sd"]) for m in METRICS],
             _count(row["parameters"])] for row in records]
    legend = "Scores are % as mean ± sd over folds × seeds."
    if experiment.baseline:
        headers += [f"Δ {_metric_label(experiment.objective)} (pp)", "Wilcoxon p", "t p",
                    "Holm p", "pairs", "verdict"]
        for cells, row in zip(rows, records):
            cells += [_delta(row["delta_pp"]), _p(row["wilcoxon_p"]), _p(row["t_p"]),
                      _p(row["holm_p"]), row["n_pairs"] or "—", _verdict(row)]
        legend += " " + _test_legend(experiment, int((table["n_pairs"] > 0).sum()))
    notes = [f"- `{row['variant']}`: {row['note']}" for row in records if row["note"]
             and row["variant"] != experiment.baseline and experiment.baseline]
    heading = "## Ablation" if experiment.design != "factorial" else "### Every cell"
    body = "\n\n".join(part for part in (
        _table(rows, headers), legend, "\n".join(notes), _forest(experiment, table, figures),
        "**Variants**\n\n" + _table([(_code(row.variant), row.changes) for row in
                                     tables.variant_definitions(experiment).itertuples()],
                                    ["variant", "changes vs the base configuration"]))
                       if part)
    if experiment.design == "factorial" and len(table) > COLLAPSE_AFTER:
        body = _details(f"all {len(table)} cells", body)
    return f"{heading}\n\n{body}"


def _test_legend(experiment: Experiment, comparisons: int) -> str:
    label = _metric_label(experiment.objective)
    return (f"Δ is the mean paired difference in {label} from `{experiment.baseline}` over "
            f"matched (fold, seed) units; p-values are two-sided: Wilcoxon signed-rank and "
            f"paired t; Holm p corrects the Wilcoxon p over the {comparisons} comparisons. "
            f"*Within noise* means Holm p ≥ {SIGNIFICANCE_LEVEL} or fewer than 6 pairs (with n "
            f"pairs the smallest attainable Wilcoxon p is 2/2ⁿ).")


def _forest(experiment: Experiment, table: pd.DataFrame, figures: Path) -> str:
    compared = table[table["n_pairs"] > 1]
    if compared.empty:
        return ""
    label = _metric_label(experiment.objective)
    path = plots.plot_deltas(list(compared["variant"]), compared["delta_pp"].to_numpy(),
                             compared["delta_ci_low"].to_numpy(),
                             compared["delta_ci_high"].to_numpy(),
                             figures / "deltas_vs_baseline.png",
                             f"Δ {label} vs {experiment.baseline}, 95 % CI",
                             f"Δ {label} (pp)")
    return _image(experiment, path, f"Δ {label} vs baseline with 95 % CIs")


def _factorial_section(experiment: Experiment, figures: Path) -> str:
    pivot = tables.factorial_pivot(experiment)
    label = _metric_label(pivot.metric)
    row_name = " × ".join(pivot.row_factors) or "all"
    headers = [f"{row_name} \\ {pivot.column_factor}", *map(str, pivot.mean.columns)]
    rows = []
    for row_key in pivot.mean.index:
        cells = []
        for column in pivot.mean.columns:
            text = _score(pivot.mean.loc[row_key, column], pivot.sd.loc[row_key, column])
            cells.append(f"**{text}** ★" if pivot.best == (row_key, column) else text)
        rows.append((_level(row_key), *cells))
    path = plots.plot_factorial_lines(
        pivot.mean.to_numpy(), pivot.sd.to_numpy(),
        [f"{row_name} = {_level(key)}" for key in pivot.mean.index],
        [str(level) for level in pivot.mean.columns], figures / "factorial.png",
        f"{label} by {pivot.column_factor}, one line per {row_name}", pivot.column_factor,
        f"{label} (%)")
    best = (f"Best cell ★: {row_name} = {_level(pivot.best[0])}, {pivot.column_factor} = "
            f"{pivot.best[1]}." if pivot.best else "No cell has a finished unit yet.")
    return "\n\n".join([
        f"## Factorial: {label} by {row_name} × {pivot.column_factor}",
        f"{label} in %, mean ± sd over folds × seeds. {best}", _table(rows, headers),
        _image(experiment, path, f"{label} by {pivot.column_factor}")])


def _search_section(experiment: Experiment, figures: Path) -> str:
    counts = tables.search_counts(experiment)
    label = _metric_label(experiment.objective)
    parts = ["## Search",
             f"Trials: {counts['recorded']} of {counts['planned']} recorded — "
             f"{counts['finished']} finished, {counts['pruned']} pruned, "
             f"{counts['failed']} failed. Sampler "
             f"`{(experiment.study.get('search') or {}).get('sampler')}`, scheduler "
             f"`{((experiment.study.get('search') or {}).get('scheduler') or {}).get('kind')}`. "
             f"Pruned trials stopped early and are not ranked."]
    best = tables.best_configuration(experiment)
    if best is not None:
        parts += [f"### Best configuration: `{best['variant']}`",
                  f"{label} {_score(best['mean'], best['sd'])} % over {best['units']} units.",
                  _table([(f"`{key}`", json.dumps(value))
                          for key, value in sorted(best["config"].items())],
                         ["parameter", "value"])]
    parts += [_top_trials(experiment), _importance(experiment), _history(experiment, figures)]
    return "\n\n".join(part for part in parts if part)


def _top_trials(experiment: Experiment) -> str:
    top = tables.top_trials(experiment)
    if top.empty:
        return ""
    space = list((experiment.study.get("search") or {}).get("space") or {})
    rows = [(row["rank"], _code(row["variant"]),
             _score(row["objective_mean"], row["objective_sd"]), row["units"],
             _count(row["parameters"]), *[_config_value(row[name]) for name in space])
            for row in top.to_dict("records")]
    headers = ["rank", "trial", f"{_metric_label(experiment.objective)} (%)", "units", "params",
               *space]
    return f"### Top {len(top)} finished trials\n\n" + _table(rows, headers)


def _importance(experiment: Experiment) -> str:
    importance, reason = tables.parameter_importance(experiment)
    if reason:
        return f"### Parameter importance\n\nNot computed: {reason}."
    rows = [(f"`{row.parameter}`", f"{row.importance:.3f}") for row in importance.itertuples()]
    finished = tables.search_counts(experiment)["finished"]
    return ("### Parameter importance\n\nfANOVA (Optuna) over the mean "
            f"{_metric_label(experiment.objective)} of {finished} finished trials; importances "
            "sum to 1 and are rough with few trials.\n\n"
            + _table(rows, ["parameter", "importance"]))


def _history(experiment: Experiment, figures: Path) -> str:
    history = tables.optimisation_history(experiment)
    label = _metric_label(experiment.objective)
    path = plots.plot_optimisation_history(
        history["trial"].to_numpy(), history["objective_mean"].to_numpy(dtype=float),
        (history["status"] == "finished").to_numpy(), history["best_so_far"].to_numpy(dtype=float),
        figures / "optimisation_history.png", f"{label} per trial (mean over folds × seeds)",
        f"{label} (%)")
    pruned = history[history["status"] != "finished"]
    listing = _table([(_code(row.variant), row.status, _score(row.objective_mean, math.nan))
                      for row in pruned.itertuples()], ["trial", "status", f"{label} at stop (%)"])
    return "\n\n".join(part for part in (
        "### Optimisation history", _image(experiment, path, "optimisation history"),
        _details(f"{len(pruned)} pruned or failed trials", listing) if len(pruned) else "")
        if part)


# ---- per variant ---------------------------------------------------------------------------

def _per_variant(experiment: Experiment, figures: Path, limit: int) -> str:
    featured = tables.featured_variants(experiment, limit)
    if not featured:
        return ""
    recall = tables.per_class_recall_table(experiment, featured)
    rows = [(_code(variant), *[_score(value, math.nan) for value in values])
            for variant, values in zip(recall.index, recall.to_numpy())]
    parts = ["## Per variant",
             f"Shown: {len(featured)} variant(s) — " + _featured_rule(experiment, limit),
             "### Per-class recall (%)",
             "Mean over each variant's finished units (folds × seeds).",
             _table(rows, ["variant", *recall.columns])]
    for index, variant in enumerate(featured):
        parts.append(_variant_figures(experiment, variant, index, figures))
    return "\n\n".join(parts)


def _featured_rule(experiment: Experiment, limit: int) -> str:
    if experiment.design == "search":
        return f"the best finished trials (up to {limit})."
    return (f"every variant (up to {limit}); larger studies show the baseline and the best by "
            "the objective.")


def _variant_figures(experiment: Experiment, variant: str, index: int, figures: Path) -> str:
    name = f"{index:02d}_{_slug(variant)}"
    parts = [f"### `{variant}`"]
    matrix = tables.pooled_confusion(experiment, variant)
    if matrix is not None:
        labels = tables.label_names(experiment)
        rule = tables.selection_rule(experiment)
        path = plots.plot_confusion(matrix, labels, figures / f"confusion_{name}.png",
                                    f"{variant}: pooled over folds × seeds, epoch rule {rule}")
        parts.append(_image(experiment, path, f"confusion matrix of {variant}"))
    curves = tables.learning_curves(experiment, variant)
    if not curves.empty:
        epochs = np.sort(curves["epoch"].unique())
        series = {}
        for series_name, group in curves.groupby("series"):
            indexed = group.set_index("epoch").reindex(epochs)
            series[series_name] = (indexed["mean"].to_numpy(dtype=float),
                                   indexed["sd"].fillna(0.0).to_numpy(dtype=float))
        path = plots.plot_learning_curves(epochs, series, figures / f"curves_{name}.png",
                                          f"{variant}: mean ± sd over folds × seeds", "score (%)")
        parts.append(_image(experiment, path, f"learning curves of {variant}"))
    return "\n\n".join(parts)


# ---- paper vs ours, failures ---------------------------------------------------------------

def _paper_section(experiment: Experiment) -> str:
    reproduces = experiment.study.get("reproduces") or {}
    if not reproduces:
        return ""
    paper_name = reproduces["paper"]
    papers = tables.load_paper_results()
    if paper_name not in papers:
        return (f"## Paper vs ours\n\nstudy.json reproduces unknown paper `{paper_name}`; "
                f"known: {', '.join(papers)}.")
    paper = papers[paper_name]
    comparison = tables.paper_vs_ours(experiment)
    aspects = ("split_unit", "evaluation", "selection", "speaker_independent")
    rows = [(_code(row["variant"]), f"`{row['paper_row']}`", _text(row.get("metric")),
             _reported(row), _ours(row), _delta(row.get("delta_pp", math.nan)),
             *[_aspect(row, aspect) for aspect in aspects], row["defaults"])
            for row in comparison.to_dict("records")]
    headers = ["variant", "paper row", "metric", "reported", "ours", "Δ (pp)", "split unit",
               "evaluation", "selection", "speaker-independent", "[DEFAULT] knobs"]
    defaults = tables.paper_defaults(paper_name)
    knob_rows = [(f"`{row.knob}`", row.value, row.spec)
                 for row in defaults.itertuples()]
    return "\n\n".join(part for part in (
        f"## Paper vs ours: {paper['citation']}",
        f"*{paper['comparability']}.* Protocol of the paper: {paper['protocol']['note']}.",
        "Protocol cells read *paper / ours*; a difference is in **bold**. Ours is mean ± sd "
        "over folds × seeds.", _table(rows, headers),
        ("**[DEFAULT] knobs** (spec values no public source gives; the rows above depend on "
         "them)\n\n" + _table(knob_rows, ["knob", "value", "spec"])) if knob_rows
        else "The spec lists no [DEFAULT] knob for this paper.") if part)


def _failures(experiment: Experiment) -> str:
    failed = tables.failed_units(experiment)
    done = tables.completeness(experiment)
    parts = ["## Failed and missing units"]
    if failed.empty:
        parts.append("No unit failed.")
    else:
        parts.append(f"{len(failed)} unit(s) failed; they are excluded from every statistic "
                     "above and are rerun by a resume.")
        parts.append(_table([(_code(row.variant), row.fold, row.seed, row.epochs_run,
                              f"`{row.error_summary}`") for row in failed.itertuples()],
                            ["variant", "fold", "seed", "epochs run", "error"]))
        parts.append(_details("tracebacks", "\n\n".join(
            f"**{row.variant}, fold {row.fold}, seed {row.seed}**\n\n```\n{row.error}\n```"
            for row in failed.itertuples())))
    if done.retried_failures:
        parts.append(f"{done.retried_failures} earlier failed attempt(s) were retried "
                     "successfully; the retry is what the tables report.")
    missing = tables.missing_units(experiment)
    if not missing.empty:
        listing = _table([(_code(row.variant), row.fold, row.seed)
                          for row in missing.itertuples()], ["variant", "fold", "seed"])
        parts.append(f"{len(missing)} planned unit(s) not run yet.\n\n"
                     + (_details("not run", listing) if len(missing) > COLLAPSE_AFTER
                        else listing))
    return "\n\n".join(parts)


# ---- formatting ----------------------------------------------------------------------------

def _table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[_escape(str(cell)) for cell in row] for row in rows]
    return tabulate(cells, headers=list(headers), tablefmt="github", disable_numparse=True)


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def _image(experiment: Experiment, path: Path, alt: str) -> str:
    return f"![{alt}]({path.relative_to(experiment.directory).as_posix()})"


def _score(mean: float, sd: float) -> str:
    """
    >>> _score(79.1634, 0.5), _score(79.1634, float("nan")), _score(float("nan"), 1.0)
    ('79.16 ± 0.50', '79.16', '—')
    """
    if _missing(mean):
        return "—"
    return f"{mean:.2f}" if _missing(sd) else f"{mean:.2f} ± {sd:.2f}"


def _delta(value: float) -> str:
    return "—" if _missing(value) else f"{value:+.2f}"


def _p(value: float) -> str:
    """
    >>> _p(0.0004), _p(0.0312), _p(float("nan"))
    ('<0.001', '0.031', '—')
    """
    if _missing(value):
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _count(value: float) -> str:
    return "—" if _missing(value) else f"{int(value):,}"


def _units(row: dict[str, Any]) -> str:
    extra = [f"{row[status]} {status}" for status in ("pruned", "failed") if row[status]]
    return str(row["finished"]) + (f" (+{', '.join(extra)})" if extra else "")


def _verdict(row: dict[str, Any]) -> str:
    return f"**{row['verdict']}**" if row["verdict"] == "significant" else row["verdict"]


def _reported(row: dict[str, Any]) -> str:
    if _missing(row.get("reported", math.nan)):
        return row.get("note") or "—"
    return _count(row["reported"]) if row["metric"] == "params" else f"{row['reported']:.2f}"


def _ours(row: dict[str, Any]) -> str:
    if row.get("metric") == "params":
        return _count(row["ours_mean"])
    text = _score(row.get("ours_mean", math.nan), row.get("ours_sd", math.nan))
    return f"{text} (n={int(row['units'])})" if text != "—" else row.get("note") or "—"


def _aspect(row: dict[str, Any], aspect: str) -> str:
    paper, ours = row[f"{aspect}_paper"], row[f"{aspect}_ours"]
    text = f"{_plain(paper)} / {_plain(ours)}"
    return f"**{text}**" if paper != ours else text


def _text(value: Any) -> str:
    return "—" if _missing(value) else str(value)


def _plain(value: Any) -> str:
    if _missing(value):
        return "not stated"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _config_value(value: Any) -> str:
    """A sampled value as JSON; '—' where a conditional parameter was not sampled."""
    return "—" if _missing(value) else json.dumps(value)


def _metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _level(key: Any) -> str:
    return " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _listing(values: Any) -> str:
    return ", ".join(map(str, values or [])) or "—"


def _inline_mapping(mapping: dict[str, Any]) -> str:
    return "; ".join(f"{key}={json.dumps(value)}" for key, value in mapping.items()) or "—"


def _code(text: str) -> str:
    return f"`{text}`"


def _escape(text: str) -> str:
    """Keep a cell in its column: pipes escaped, newlines as spaces."""
    return text.replace("|", "\\|").replace("\n", " ")


def _slug(name: str) -> str:
    """A file-name-safe form of a variant name.

    >>> _slug("eca=on / k=7")
    'eca_on_k_7'
    """
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_") or "variant"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
