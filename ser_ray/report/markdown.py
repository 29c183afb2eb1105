"""Render an experiment directory as `report.md` (+ `figures/*.png`), `results.csv` and the
live `progress.md`.

Rendering only: every number comes from the table modules (`units`, `ablation`, `search`,
`papers`, `setup`), and everything is rebuilt from the ledger and study.json alone, so a
report written after a resume is the same as one written by an uninterrupted run. Markdown is
GitHub-flavoured; figures are linked relatively.
"""

from __future__ import annotations

from pathlib import Path

from ser_ray import plots
from ser_ray.experiment import Experiment, load_experiment
from ser_ray.experiment.study_record import Hardware, ProtocolRecord
from ser_ray.experiment.training import OPTIMISTIC_RULE
from ser_ray.report import markup as md
from ser_ray.report import results, setup, units

REPORT_FILE = "report.md"
RESULTS_FILE = "results.csv"
PROGRESS_FILE = "progress.md"
PROGRESS_FIGURE = "progress.png"
FIGURES_DIR = "figures"
SELECTION_RULES = {
    "last": "last epoch",
    "best-validation": "best validation epoch by (UA + WA) / 2",
    "best-test": f"best test epoch by (UA + WA) / 2 — {md.optimistic('epoch')}",
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
    """Write DIR/progress.md (`render_progress`) and its figure of every configuration's
    curve and the best so far; a study refreshes both as units are recorded."""
    experiment = load_experiment(Path(experiment_dir))
    text = render_progress(experiment_dir)
    curves = units.objective_curves(experiment)
    if curves:
        label = md.metric_label(experiment.objective)
        figure = plots.plot_progress(
            curves, units.best_so_far_curve(experiment),
            experiment.directory / "figures" / PROGRESS_FIGURE,
            f"{experiment.study.name}: {label} (%) as configurations train and end",
            f"{label} (%)")
        text += "\n" + md.image(experiment.directory, figure, "progress") + "\n"
    path = experiment.directory / PROGRESS_FILE
    path.write_text(text, encoding="utf-8")
    return path


def render_progress(experiment_dir: Path) -> str:
    """A short markdown progress summary: units done, best so far, failures, pruned."""
    experiment = load_experiment(Path(experiment_dir))
    done = units.completeness(experiment)
    replayed = f", {done.replayed} replayed" if experiment.design == "search" else ""
    lines = [f"## Progress: {experiment.study.name}", "",
             f"**{done.recorded} of {done.planned} units** recorded: {done.finished} finished, "
             f"{done.pruned} pruned{replayed}; {done.failed} failed; {done.not_run} not run yet."]
    leader = units.best_so_far(experiment)
    if leader is not None:
        lines.append(f"Best so far by {md.metric_label(experiment.objective)}: "
                     f"**{leader.variant}** {md.score(leader.mean, leader.sd)} % over "
                     f"{leader.units} units{chosen_how(experiment, leader)}.")
    failures = units.failed_units(experiment)
    if not failures.empty:
        lines += ["", "Failed units:"]
        lines += [f"- {row.variant}, fold {row.fold}, seed {row.seed}: "
                  f"`{_path(experiment, row.error_summary)}`" for row in failures.itertuples()]
        lines += ["", _failure_advice(experiment)]
    return "\n".join(lines) + "\n"


def chosen_how(experiment: Experiment, leader: units.BestSoFar) -> str:
    """What a "best" configuration's number means: chosen on the test folds it is scored on
    (OPTIMISTIC), or chosen on validation and scored on test — OPTIMISTIC still when each
    fold's epoch was picked on its test split."""
    if experiment.selects_on_test:
        return f" — {md.optimistic('configuration')}"
    test_label = md.metric_label(experiment.test_metric)
    epochs = f" — {md.optimistic('epoch')}" if experiment.selects_epochs_on_test else ""
    return f"; its test {test_label}: {md.score(leader.test_mean, leader.test_sd)} %{epochs}"


def _failure_advice(experiment: Experiment) -> str:
    """What happens to failed units: a resume reruns an ablation's; a search trial that
    failed used its place in the trial budget and is not retried."""
    if experiment.design != "search":
        return "A resume reruns them."
    return ("A failed search trial is not retried: it used its place in the trial budget. To "
            "try more configurations, raise `budget.trials` and resume.")


# ---- header --------------------------------------------------------------------------------

def _title(experiment: Experiment) -> str:
    study = experiment.study
    done = units.completeness(experiment)
    lines = [f"# {study.name}"]
    if done.partial:
        lines += ["", f"> **{done.label}** — {done.failed} failed, {done.not_run} not run yet. "
                  "Every number below covers the recorded units only."]
    for warning in _optimistic_warnings(experiment):
        lines += ["", f"> {warning}"]
    if study.description:
        lines += ["", study.description]
    return "\n".join(lines)


def _optimistic_warnings(experiment: Experiment) -> list[str]:
    """The header's warnings for numbers chosen on the test folds they are reported on."""
    warnings = []
    if OPTIMISTIC_RULE in setup.selection_rules(experiment):
        warnings.append(f"{md.optimistic('epoch')}: configurations with selection "
                        f"`{OPTIMISTIC_RULE}` report each fold at its best test epoch, so "
                        "their scores are biased upward.")
    if experiment.design == "search" and experiment.selects_on_test:
        label = md.metric_label(experiment.objective)
        warnings.append(f"{md.optimistic('configuration')}: trials were ranked and pruned by "
                        f"their test {label}, so the best trial's score is biased upward. "
                        f"Ranking by `objective.metric: validation_{experiment.objective}` (with "
                        "a validation split, e.g. `train.validation: train-speakers`) chooses "
                        "without the test folds.")
    return warnings


def _setup(experiment: Experiment) -> str:
    study = experiment.study
    corpus = study.corpus
    done = units.completeness(experiment)
    replayed = f", {done.replayed} replayed" if experiment.design == "search" else ""
    rows = [
        ("design", _design_line(experiment)),
        ("objective", _objective_line(experiment)),
        ("units", f"{done.label}: {done.finished} finished, {done.pruned} pruned, "
                  f"{done.failed} failed{replayed}, {done.not_run} not run"),
        ("corpus", f"{corpus.reader}: {corpus.utterances} utterances, {corpus.speakers} "
                   f"speakers; root `{_path(experiment, corpus.root)}`; manifest "
                   f"`{_path(experiment, corpus.manifest)}`"),
        ("class selection", md.inline_mapping(corpus.selection)),
        ("class counts", ", ".join(f"{row.label} {row.utterances}"
                                   for row in setup.class_counts(experiment).itertuples())),
        ("protocol", _protocol_line(study.protocol)),
        ("epoch selection", "; ".join(SELECTION_RULES.get(rule, rule)
                                      for rule in setup.selection_rules(experiment))),
        ("configuration selection", _configuration_choice(experiment)),
        ("folds × seeds", f"folds {md.listing(study.folds)} × seeds {md.listing(study.seeds)}; "
                          f"{study.epochs} epochs"),
        ("model", f"`{study.model.get('name')}` "
                  f"{md.inline_mapping(study.model.get('options') or {})}"),
        ("trial storage", f"`{_path(experiment, study.trial_storage)}`"),
        ("hardware", _hardware_line(study.hardware)),
        ("git commit", f"`{study.git_commit}`" if study.git_commit
         else "unknown (not a git checkout)"),
        ("started", study.started_at),
    ]
    parts = ["## Setup", md.table(rows, ["", "value"]), _feature_section(experiment),
             _packages_section(study.packages), _settings_section(experiment),
             _skipped_section(experiment)]
    return "\n\n".join(part for part in parts if part)


def _objective_line(experiment: Experiment) -> str:
    metric = experiment.test_metric
    where = "test folds" if experiment.selects_on_test else "validation split"
    return (f"{md.metric_label(experiment.objective)} ({METRIC_WORDS.get(metric, metric)} on "
            f"the {where}), {'maximised' if experiment.maximise else 'minimised'}")


def _configuration_choice(experiment: Experiment) -> str:
    """What configurations are chosen by: the objective, and on which split."""
    label = md.metric_label(experiment.objective)
    test_label = md.metric_label(experiment.test_metric)
    if experiment.design == "search":
        chosen = f"trials are ranked and pruned, and the best chosen, by mean {label} over folds"
    else:
        chosen = (f"variants are compared with the baseline in test {test_label}; the best "
                  f"variant is named by mean {label} over folds")
    if experiment.selects_on_test:
        return f"{chosen} — {md.optimistic('configuration')}"
    return f"{chosen}, and reported with its test {test_label}"


def _path(experiment: Experiment, recorded: str) -> str:
    return md.relative_paths(recorded, experiment.directory)


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
    rows = [(f"`{row.cache_key}`", row.recipe, row.augmentations, row.rows,
             f"`{_path(experiment, row.path)}`") for row in caches.itertuples()]
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
    listing = md.table([(row.stage, f"`{_path(experiment, row.path)}`", row.reason_code,
                         _path(experiment, row.reason))
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
                     f"above. {_failure_advice(experiment)}")
        parts.append(md.table([(md.code(row.variant), row.fold, row.seed, row.epochs_run,
                              f"`{_path(experiment, row.error_summary)}`")
                             for row in failed.itertuples()],
                            ["variant", "fold", "seed", "epochs run", "error"]))
        parts.append(md.details("tracebacks", "\n\n".join(
            f"**{row.variant}, fold {row.fold}, seed {row.seed}**\n\n```\n"
            f"{_path(experiment, row.error)}\n```" for row in failed.itertuples())))
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
    elif experiment.design == "search" and done.not_run:
        parts.append(f"{done.not_run} planned unit(s) not run yet: the trial budget has trials "
                     "left, which a resume runs.")
    return "\n\n".join(parts)
