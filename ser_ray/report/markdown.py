"""Render an experiment directory as `report.md` (+ `figures/*.png`), `results.csv` and the
live `progress.md`.

Rendering only: every number comes from the table modules (`units`, `ablation`, `search`,
`papers`, `setup`), and everything is rebuilt from the ledger and study.json alone, so a
report written after a resume is the same as one written by an uninterrupted run. Markdown is
GitHub-flavoured; figures are linked relatively.
"""

from __future__ import annotations

from pathlib import Path

from ser_ray.experiment import Experiment, load_experiment
from ser_ray.experiment.study_record import Hardware, ProtocolRecord
from ser_ray.report import markup as md
from ser_ray.report import results, setup, units

REPORT_FILE = "report.md"
RESULTS_FILE = "results.csv"
PROGRESS_FILE = "progress.md"
FIGURES_DIR = "figures"
SELECTION_RULES = {
    "last": "last epoch",
    "best-validation": "best validation epoch by (UA + WA) / 2",
    "best-test": "best test epoch by (UA + WA) / 2 — **OPTIMISTIC: selected on the test set**",
}
METRIC_WORDS = {"unweighted_accuracy": "unweighted accuracy", "weighted_accuracy":
                "weighted accuracy", "ua_wa_mean": "(UA + WA) / 2", "macro_f1": "macro F1"}


def write_report(experiment_dir: Path, *, featured: int = units.FEATURED_VARIANTS) -> Path:
    """Write DIR/report.md, DIR/figures/*.png and DIR/results.csv; return the report's path.

    Args:
        experiment_dir: the study's directory (ledger.jsonl and study.json).
        featured: at most this many variants get a confusion matrix and learning curves.
    """
    experiment = load_experiment(Path(experiment_dir))
    figures = experiment.directory / FIGURES_DIR
    units.unit_frame(experiment).to_csv(experiment.directory / RESULTS_FILE, index=False)
    sections = [_title(experiment), _setup(experiment)]
    if experiment.rows:
        sections += [results.design_section(experiment, figures),
                     results.per_variant(experiment, figures, featured),
                     results.paper_section(experiment), _failures(experiment)]
    else:
        sections.append("No unit has been recorded yet.")
    path = experiment.directory / REPORT_FILE
    path.write_text("\n\n".join(section for section in sections if section) + "\n",
                    encoding="utf-8")
    return path


def write_progress(experiment_dir: Path) -> Path:
    """Write DIR/progress.md (`render_progress`); a study refreshes it as units are recorded."""
    path = Path(experiment_dir) / PROGRESS_FILE
    path.write_text(render_progress(experiment_dir), encoding="utf-8")
    return path


def render_progress(experiment_dir: Path) -> str:
    """A short markdown progress summary: units done, best so far, failures, pruned."""
    experiment = load_experiment(Path(experiment_dir))
    done = units.completeness(experiment)
    lines = [f"## Progress: {experiment.study.name}", "",
             f"**{done.recorded} of {done.planned} units** recorded: {done.finished} finished, "
             f"{done.pruned} pruned; {done.failed} failed; {done.not_run} not run yet."]
    leader = units.best_so_far(experiment)
    if leader is not None:
        lines.append(f"Best so far by {md.metric_label(experiment.objective)}: "
                     f"**{leader.variant}** {md.score(leader.mean, leader.sd)} % over "
                     f"{leader.units} units.")
    failures = units.failed_units(experiment)
    if not failures.empty:
        lines += ["", "Failed units:"]
        lines += [f"- {row.variant}, fold {row.fold}, seed {row.seed}: `{row.error_summary}`"
                  for row in failures.itertuples()]
    return "\n".join(lines) + "\n"


# ---- header --------------------------------------------------------------------------------

def _title(experiment: Experiment) -> str:
    study = experiment.study
    done = units.completeness(experiment)
    lines = [f"# {study.name}"]
    if done.partial:
        lines += ["", f"> **{done.label}** — {done.failed} failed, {done.not_run} not run yet. "
                  "Every number below covers the recorded units only."]
    if study.description:
        lines += ["", study.description]
    return "\n".join(lines)


def _setup(experiment: Experiment) -> str:
    study = experiment.study
    corpus = study.corpus
    done = units.completeness(experiment)
    rows = [
        ("design", _design_line(experiment)),
        ("objective", f"{md.metric_label(experiment.objective)} "
                      f"({METRIC_WORDS.get(experiment.objective, experiment.objective)}), "
                      f"{'maximised' if experiment.maximise else 'minimised'}"),
        ("units", f"{done.label}: {done.finished} finished, {done.pruned} pruned, "
                  f"{done.failed} failed, {done.not_run} not run"),
        ("corpus", f"{corpus.reader}: {corpus.utterances} utterances, {corpus.speakers} "
                   f"speakers; manifest `{corpus.manifest}`"),
        ("class selection", md.inline_mapping(corpus.selection)),
        ("class counts", ", ".join(f"{row.label} {row.utterances}"
                                   for row in setup.class_counts(experiment).itertuples())),
        ("protocol", _protocol_line(study.protocol)),
        ("epoch selection", "; ".join(SELECTION_RULES.get(rule, rule)
                                      for rule in setup.selection_rules(experiment))),
        ("folds × seeds", f"folds {md.listing(study.folds)} × seeds {md.listing(study.seeds)}; "
                          f"{study.epochs} epochs"),
        ("model", f"`{study.model.get('name')}` "
                  f"{md.inline_mapping(study.model.get('options') or {})}"),
        ("hardware", _hardware_line(study.hardware)),
        ("git commit", f"`{study.git_commit}`" if study.git_commit
         else "unknown (not a git checkout)"),
        ("started", study.started_at),
    ]
    parts = ["## Setup", md.table(rows, ["", "value"]), _feature_section(experiment),
             _packages_section(study.packages), _settings_section(experiment),
             _skipped_section(experiment)]
    return "\n\n".join(part for part in parts if part)


def _design_line(experiment: Experiment) -> str:
    line = experiment.design
    if experiment.baseline:
        line += f", baseline `{experiment.baseline}`"
    factors = experiment.study.factors
    if factors:
        line += "; factors " + "; ".join(f"{name} ∈ {md.listing(levels)}"
                                         for name, levels in factors.items())
    return line


def _protocol_line(protocol: ProtocolRecord) -> str:
    shape = protocol.kind + (f", k = {protocol.k}" if protocol.k else "")
    description = protocol.description
    if protocol.speaker_independent:
        return (f"speaker-independent ({shape}): no test speaker is heard in training. "
                f"{description}")
    return (f"**SPEAKER-DEPENDENT** ({shape}): test speakers are also heard in training, which "
            f"inflates scores. {description}")


def _hardware_line(hardware: Hardware) -> str:
    gpus = ", ".join(hardware.gpus) or "none"
    return f"{hardware.cpus or '?'} CPUs; GPUs: {gpus}; {hardware.platform}"


def _feature_section(experiment: Experiment) -> str:
    caches = setup.feature_caches(experiment)
    if caches.empty:
        return ""
    rows = [(f"`{row.cache_key}`", row.recipe, row.augmentations, row.rows, f"`{row.path}`")
            for row in caches.itertuples()]
    return "**Feature caches**\n\n" + md.table(rows, ["cache key", "recipe", "augmentations",
                                                    "rows", "path"])


def _packages_section(packages: dict[str, str]) -> str:
    if not packages:
        return ""
    return "**Packages**: " + ", ".join(f"{name} {version}"
                                        for name, version in sorted(packages.items()))


def _settings_section(experiment: Experiment) -> str:
    settings = setup.training_settings(experiment)
    if settings.by_variant.empty:
        return ""
    families = ", ".join(setup.paper_families(experiment)) or "no model"
    rows = [(row.setting, "varies (below)" if not isinstance(row.value, str)
             else f"{row.value} ★" if row.departs else row.value, row.paper)
            for row in settings.common.itertuples()]
    parts = ["**Training settings** (effective, as every configuration trained; ★ = departs "
             f"from the paper training of {families})",
             md.table(rows, ["setting", "value", "paper training"])]
    varying = list(settings.by_variant.columns[1:])
    if varying:
        cells = [(md.code(variant), *[f"{value} ★" if departs else value
                                    for value, departs in zip(values, marks)])
                 for variant, values, marks in zip(
                     settings.by_variant["variant"], settings.by_variant[varying].to_numpy(),
                     settings.departs[varying].to_numpy())]
        unit = "trial" if experiment.design == "search" else "variant"
        listing = md.table(cells, [unit, *varying])
        heading = f"Settings that vary, per {unit}"
        parts.append(md.details(f"{heading} ({len(cells)})", listing)
                     if len(cells) > md.COLLAPSE_AFTER else f"{heading}:\n\n{listing}")
    return "\n\n".join(parts)


def _skipped_section(experiment: Experiment) -> str:
    skipped = setup.skipped_inputs(experiment)
    if skipped.empty:
        return "**Skipped inputs**: none (scan and features read every input)."
    counts = setup.skipped_counts(experiment)
    listing = md.table([(row.stage, f"`{row.path}`", row.reason_code, row.reason)
                      for row in skipped.itertuples()], ["stage", "path", "reason code", "reason"])
    summary = md.table([(row.stage, row.reason_code, row.inputs) for row in counts.itertuples()],
                     ["stage", "reason code", "inputs"])
    return (f"**Skipped inputs**: {len(skipped)}\n\n{summary}\n\n"
            + (md.details(f"all {len(skipped)} skipped inputs", listing)
               if len(skipped) > md.COLLAPSE_AFTER else listing))


def _failures(experiment: Experiment) -> str:
    failed = units.failed_units(experiment)
    done = units.completeness(experiment)
    parts = ["## Failed and missing units"]
    if failed.empty:
        parts.append("No unit failed.")
    else:
        parts.append(f"{len(failed)} unit(s) failed; they are excluded from every statistic "
                     "above and are rerun by a resume.")
        parts.append(md.table([(md.code(row.variant), row.fold, row.seed, row.epochs_run,
                              f"`{row.error_summary}`") for row in failed.itertuples()],
                            ["variant", "fold", "seed", "epochs run", "error"]))
        parts.append(md.details("tracebacks", "\n\n".join(
            f"**{row.variant}, fold {row.fold}, seed {row.seed}**\n\n```\n{row.error}\n```"
            for row in failed.itertuples())))
    if done.retried_failures:
        parts.append(f"{done.retried_failures} earlier failed attempt(s) were retried "
                     "successfully; the retry is what the tables report.")
    missing = units.missing_units(experiment)
    if not missing.empty:
        listing = md.table([(md.code(row.variant), row.fold, row.seed)
                          for row in missing.itertuples()], ["variant", "fold", "seed"])
        parts.append(f"{len(missing)} planned unit(s) not run yet.\n\n"
                     + (md.details("not run", listing) if len(missing) > md.COLLAPSE_AFTER
                        else listing))
    return "\n\n".join(parts)
