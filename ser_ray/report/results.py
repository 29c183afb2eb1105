"""The report's results sections: the ablation table and factorial pivot, the search's trials,
each featured variant's figures, and the paper comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser_ray import plots
from ser_ray.experiment import METRIC_NAMES, Experiment, scheduler_text
from ser_ray.papers import load_paper_results
from ser_ray.report import ablation, papers, search, setup, units
from ser_ray.report import markup as md
from ser_ray.report.stats import SIGNIFICANCE_LEVEL, smallest_wilcoxon_p


def design_section(experiment: Experiment, figures: Path) -> str:
    if experiment.design == "search":
        return _search_section(experiment, figures)
    parts = []
    if experiment.design == "factorial":
        parts.append(_factorial_section(experiment, figures))
    parts.append(_ablation_section(experiment, figures))
    return "\n\n".join(parts)


def _ablation_section(experiment: Experiment, figures: Path) -> str:
    table = ablation.ablation_table(experiment)
    inference = ablation.fold_inference(experiment)
    records = table.to_dict("records")
    label = md.metric_label(experiment.test_metric)
    seeds = len(experiment.study.seeds) > 1
    headers = ["variant", "units", *[md.METRIC_LABELS[m] for m in METRIC_NAMES], "params"]
    headers += ["seed sd (pp)"] if seeds else []
    rows = [[md.code(row["variant"]), _units(row),
             *[md.score(row[f"{m}_mean"], row[f"{m}_sd"]) for m in METRIC_NAMES],
             md.count(row["parameters"]), *([md.score(row["seed_sd"], math.nan)] if seeds
                                            else [])] for row in records]
    legend = "Scores are % as mean ± sd over folds × seeds."
    if seeds:
        legend += (f" Seed sd: each variant's test {label} sd across its seeds within a "
                   "fold, averaged over folds — the training noise the seed average takes out "
                   "of each fold's score.")
    if experiment.baseline:
        t_header = "corrected t p" if inference.corrected else "t p"
        headers += [f"Δ {label} (pp)", "Wilcoxon p", t_header, "Holm p", "n", "verdict"]
        for cells, row in zip(rows, records):
            cells += [md.delta(row["delta_pp"]), md.p_value(row["wilcoxon_p"]),
                      md.p_value(row["t_p"]), md.p_value(row["holm_p"]),
                      row["n_folds"] or "—", _verdict(row)]
        legend += "\n\n" + _test_legend(experiment, inference,
                                         int((table["variant"] != experiment.baseline).sum()))
    notes = [f"- `{row['variant']}`: {row['note']}" for row in records if row["note"]
             and row["variant"] != experiment.baseline and experiment.baseline]
    heading = "## Ablation" if experiment.design != "factorial" else "### Every cell"
    body = "\n\n".join(part for part in (
        md.table(rows, headers), legend, "\n".join(notes), _forest(experiment, table, figures),
        "**Variants**\n\n" + md.table([(md.code(row.variant), row.changes) for row in
                                     ablation.variant_definitions(experiment).itertuples()],
                                    ["variant", "changes vs the base configuration"]))
                       if part)
    if experiment.design == "factorial" and len(table) > md.COLLAPSE_AFTER:
        body = md.details(f"all {len(table)} cells", body)
    return f"{heading}\n\n{body}"


def _test_legend(experiment: Experiment, inference: ablation.FoldInference,
                 comparisons: int) -> str:
    """What the tests are run over, which one gives the verdict, what it can reach at this
    many folds and what it generalises over."""
    label = md.metric_label(experiment.test_metric)
    n = inference.planned_folds
    smallest = smallest_wilcoxon_p(n)
    floor = (f"**no comparison can reach p < {SIGNIFICANCE_LEVEL} with this test at {n} "
             "folds**" if smallest >= SIGNIFICANCE_LEVEL
             else f"so p < {SIGNIFICANCE_LEVEL} is attainable")
    return "\n".join([
        f"- **Δ**: the mean paired difference in test {label} from `{experiment.baseline}`. "
        "All seeds of a fold share its test speakers, so the matched seeds' differences are "
        "averaged within each fold first: each fold is one observation, and n (column *n*) "
        f"is the number of folds — {_folds_shape(inference)}. Seeds make each fold's "
        "difference less noisy; they add no observation.",
        f"- **Tests**: {_tests_sentence(inference)}",
        f"- **Holm**: Holm p adjusts the {_verdict_test(inference)} p-values over all "
        f"m = {comparisons} comparisons of this table; a comparison that cannot be tested "
        f"counts with p = 1. *significant* means Holm p < {SIGNIFICANCE_LEVEL}; anything else "
        "is *within noise*.",
        f"- **Smallest p**: at n = {n} the Wilcoxon test cannot give a two-sided p below "
        f"2/2^{n} = {smallest:.4g}" + (
            " (it is shown for reference; the corrected t has no such floor)."
            if inference.corrected else f": {floor}."),
        f"- **Scope**: {_scope_sentence(experiment, n)}",
    ])


def _folds_shape(inference: ablation.FoldInference) -> str:
    if inference.corrected:
        repeats = "1 repeat" if inference.repeats == 1 else f"{inference.repeats} repeats"
        return f"{inference.planned_folds} planned = {repeats} × {inference.k} splits"
    return f"{inference.planned_folds} planned {inference.protocol} folds"


def _verdict_test(inference: ablation.FoldInference) -> str:
    return "corrected resampled t" if inference.corrected else "Wilcoxon"


def _tests_sentence(inference: ablation.FoldInference) -> str:
    if not inference.corrected:
        return ("p-values are two-sided over the n fold differences: the Wilcoxon "
                "signed-rank test, **which gives the verdict**, and the paired t-test, shown "
                "beside it (it assumes normal differences, which so few cannot show).")
    return ("stratified folds share most of their training data, so their differences are "
            "correlated: the verdict comes from the corrected resampled t-test of Nadeau & "
            "Bengio (2003), t = mean(d) / √((1/J + n_test/n_train) · s²) with J = n, "
            f"n_test/n_train = 1/(k − 1) = {inference.test_train_ratio:.3g} and J − 1 degrees "
            "of freedom (column *corrected t p*; its 95 % CI too). The Wilcoxon "
            "signed-rank p is shown for reference only: it treats the folds as independent.")


def _scope_sentence(experiment: Experiment, n: int) -> str:
    """What the test generalises over: the folds this study has, not new speakers."""
    protocol = experiment.study.protocol
    if protocol.kind == "stratified":
        return ("The test generalises over other random stratified splits of these same "
                "utterances; test speakers are also heard in training, so it says nothing "
                "about new speakers.")
    return (f"The test generalises over these {n} {protocol.kind} folds — the "
            f"{'sessions and their speakers' if protocol.kind == 'session' else 'speakers'} "
            "held out here — not to new speakers or recordings.")


def _forest(experiment: Experiment, table: pd.DataFrame, figures: Path) -> str:
    compared = table[table["n_folds"] > 1]
    if compared.empty:
        return ""
    label = md.metric_label(experiment.test_metric)
    path = plots.plot_deltas(list(compared["variant"]), compared["delta_pp"].to_numpy(),
                             compared["delta_ci_low"].to_numpy(),
                             compared["delta_ci_high"].to_numpy(),
                             figures / "deltas_vs_baseline.png",
                             f"Δ test {label} vs {experiment.baseline}, 95 % CI over folds",
                             f"Δ {label} (pp)")
    return md.image(experiment.directory, path, f"Δ {label} vs baseline with 95 % CIs")


def _factorial_section(experiment: Experiment, figures: Path) -> str:
    pivot = ablation.factorial_pivot(experiment)
    label = md.metric_label(pivot.metric)
    row_name = " × ".join(pivot.row_factors) or "all"
    headers = [f"{row_name} \\ {pivot.column_factor}", *map(str, pivot.mean.columns)]
    rows = []
    for row_key in pivot.mean.index:
        cells = []
        for column in pivot.mean.columns:
            text = md.score(pivot.mean.loc[row_key, column], pivot.sd.loc[row_key, column])
            cells.append(f"**{text}** ★" if pivot.best == (row_key, column) else text)
        rows.append((md.level(row_key), *cells))
    path = plots.plot_factorial_lines(
        pivot.mean.to_numpy(), pivot.sd.to_numpy(),
        [f"{row_name} = {md.level(key)}" for key in pivot.mean.index],
        [str(level) for level in pivot.mean.columns], figures / "factorial.png",
        f"{label} by {pivot.column_factor}, one line per {row_name}", pivot.column_factor,
        f"{label} (%)")
    return "\n\n".join([
        f"## Factorial: {label} by {row_name} × {pivot.column_factor}",
        f"Test {label} in %, mean ± sd over folds × seeds. {_best_cell(experiment, pivot)}",
        md.table(rows, headers),
        md.image(experiment.directory, path, f"{label} by {pivot.column_factor}")])


def _best_cell(experiment: Experiment, pivot: ablation.FactorialPivot) -> str:
    if pivot.best is None:
        return "No cell has a finished unit yet."
    row_name = " × ".join(pivot.row_factors) or "all"
    cell = f"{row_name} = {md.level(pivot.best[0])}, {pivot.column_factor} = {pivot.best[1]}"
    chosen_by = md.metric_label(pivot.selected_by)
    if experiment.selects_on_test:
        return f"Best cell ★ by mean {chosen_by}: {cell} — {md.optimistic('configuration')}."
    return f"Best cell ★ by mean {chosen_by}: {cell}; the table shows its test score."


def _search_section(experiment: Experiment, figures: Path) -> str:
    counts = search.search_counts(experiment)
    record = experiment.study.search
    parts = ["## Search",
             f"Trials: {counts['run']} of {counts['planned']} run — "
             f"{counts['finished']} finished, {counts['pruned']} pruned, "
             f"{counts['failed']} failed, {counts['replayed']} replayed a recorded "
             f"configuration. Sampler `{record.sampler if record else None}`, scheduler "
             f"{scheduler_text(record.scheduler) if record else None}. "
             f"Pruned trials stopped early and are not ranked; a failed trial is not retried."]
    leader = search.best_configuration(experiment)
    if leader is not None:
        parts += [f"### Best configuration: `{leader['variant']}`", _headline(experiment, leader),
                  md.table([(f"`{key}`", json.dumps(value))
                            for key, value in leader["config"].items()],
                           ["parameter", "value"])]
    parts += [_top_trials(experiment), _replays(experiment), _importance(experiment),
              _history(experiment, figures)]
    return "\n\n".join(part for part in parts if part)


def _headline(experiment: Experiment, leader: dict[str, Any]) -> str:
    """The best trial's number, and what chose it."""
    label = md.metric_label(experiment.objective)
    if experiment.selects_on_test:
        return (f"{label} {md.score(leader['mean'], leader['sd'])} % over {leader['units']} "
                f"units — {md.optimistic('configuration')}.")
    test_label = md.metric_label(experiment.test_metric)
    return (f"Chosen by {label} {md.score(leader['mean'], leader['sd'])} %; its test "
            f"{test_label}: **{md.score(leader['test_mean'], leader['test_sd'])} %** over "
            f"{leader['units']} units.")


def _top_trials(experiment: Experiment) -> str:
    top = search.top_trials(experiment)
    if top.empty:
        return ""
    space = search.search_space(experiment)
    test_score = not experiment.selects_on_test
    rows = [(row["rank"], md.code(row["variant"]),
             md.score(row["objective_mean"], row["objective_sd"]),
             *([md.score(row["test_mean"], row["test_sd"])] if test_score else []),
             row["units"], md.count(row["parameters"]),
             *[md.config_value(row[name]) for name in space])
            for row in top.to_dict("records")]
    test_header = f"test {md.metric_label(experiment.test_metric)} (%)"
    headers = ["rank", "trial", f"{md.metric_label(experiment.objective)} (%)",
               *([test_header] if test_score else []), "units", "params", *space]
    ranked_by = f"ranked by {md.metric_label(experiment.objective)}" + (
        f" — {md.optimistic('configuration')}" if experiment.selects_on_test else "")
    return f"### Top {len(top)} finished trials ({ranked_by})\n\n" + md.table(rows, headers)


def _replays(experiment: Experiment) -> str:
    replays = search.replayed_trials(experiment)
    if replays.empty:
        return ""
    rows = [(md.code(row.variant), md.code(row.replay_of),
             _error_line(experiment, row.error)) for row in replays.itertuples()]
    return (f"### Replayed trials\n\n{len(replays)} trial(s) proposed a configuration already "
            "recorded, trained nothing and reported that configuration's units; each used a "
            "trial of the budget.\n\n"
            + md.table(rows, ["trial", "repeats", "error"]))


def _error_line(experiment: Experiment, error: str | None) -> str:
    if not error:
        return "—"
    return f"`{md.relative_paths(error.strip().splitlines()[-1], experiment.directory)}`"


def _importance(experiment: Experiment) -> str:
    importance, reason = search.parameter_importance(experiment)
    if reason:
        return f"### Parameter importance\n\nNot computed: {reason}."
    rows = [(f"`{row.parameter}`", f"{row.importance:#.2g}") for row in importance.itertuples()]
    finished = search.search_counts(experiment)["finished"]
    text = ("### Parameter importance\n\nfANOVA (Optuna) over the mean "
            f"{md.metric_label(experiment.objective)} of {finished} finished trials; "
            "importances sum to 1.")
    if not search.importance_is_reliable(finished, len(importance)):
        parameters = f"{len(importance)} parameter" + ("s" if len(importance) != 1 else "")
        text += (f" **Not reliable**: {finished} finished trials for {parameters}, fewer "
                 f"than {search.TRIALS_PER_IMPORTANCE_PARAMETER} per "
                 "parameter; with so few, the ranking mostly reflects which trials happened to "
                 "be sampled.")
    return text + "\n\n" + md.table(rows, ["parameter", "importance"])


def _history(experiment: Experiment, figures: Path) -> str:
    history = search.optimisation_history(experiment)
    label = md.metric_label(experiment.objective)
    path = plots.plot_optimisation_history(
        history["trial"].to_numpy(), history["objective_mean"].to_numpy(dtype=float),
        (history["status"] == "finished").to_numpy(), history["best_so_far"].to_numpy(dtype=float),
        figures / "optimisation_history.png", f"{label} per trial (mean over folds × seeds)",
        f"{label} (%)")
    pruned = history[history["status"] != "finished"]
    listing = md.table([(md.code(row.variant), row.status, md.score(row.objective_mean, math.nan))
                      for row in pruned.itertuples()], ["trial", "status", f"{label} at stop (%)"])
    return "\n\n".join(part for part in (
        "### Optimisation history", md.image(experiment.directory, path, "optimisation history"),
        md.details(f"{len(pruned)} pruned or failed trials", listing) if len(pruned) else "")
        if part)


def per_variant(experiment: Experiment, figures: Path, limit: int) -> str:
    featured = units.featured_variants(experiment, limit)
    if not featured:
        return ""
    recall = units.per_class_recall_table(experiment, featured)
    rows = [(md.code(variant), *[md.score(value, math.nan) for value in values])
            for variant, values in zip(recall.index, recall.to_numpy())]
    parts = ["## Per variant",
             f"Shown: {len(featured)} variant(s) — " + _featured_rule(experiment, limit),
             "### Per-class recall (%)",
             "Mean over each variant's finished units (folds × seeds).",
             md.table(rows, ["variant", *recall.columns])]
    for index, variant in enumerate(featured):
        parts.append(_variant_figures(experiment, variant, index, figures))
    return "\n\n".join(parts)


def _featured_rule(experiment: Experiment, limit: int) -> str:
    if experiment.design == "search":
        return f"the best finished trials (up to {limit})."
    return (f"every variant (up to {limit}); larger studies show the baseline and the best by "
            "the objective.")


def _variant_figures(experiment: Experiment, variant: str, index: int, figures: Path) -> str:
    name = f"{index:02d}_{md.slug(variant)}"
    parts = [f"### `{variant}`"]
    matrix = units.pooled_confusion(experiment, variant)
    if matrix is not None:
        labels = units.label_names(experiment)
        rule = setup.selection_rule(experiment)
        path = plots.plot_confusion(matrix, labels, figures / f"confusion_{name}.png",
                                    f"{variant}: pooled over folds × seeds, epoch rule {rule}")
        parts.append(md.image(experiment.directory, path, f"confusion matrix of {variant}"))
    curves = units.learning_curves(experiment, variant)
    if not curves.empty:
        epochs = np.sort(curves["epoch"].unique())
        series = {}
        for series_name, group in curves.groupby("series"):
            indexed = group.set_index("epoch").reindex(epochs)
            series[series_name] = (indexed["mean"].to_numpy(dtype=float),
                                   indexed["sd"].fillna(0.0).to_numpy(dtype=float))
        path = plots.plot_learning_curves(epochs, series, figures / f"curves_{name}.png",
                                          f"{variant}: mean ± sd over folds × seeds", "score (%)")
        parts.append(md.image(experiment.directory, path, f"learning curves of {variant}"))
    return "\n\n".join(parts)


def paper_section(experiment: Experiment) -> str:
    reproduces = experiment.study.reproduces
    if reproduces is None:
        return ""
    paper_name = reproduces.paper
    known = load_paper_results()
    if paper_name not in known:
        return (f"## Paper vs ours\n\nstudy.json reproduces unknown paper `{paper_name}`; "
                f"known: {', '.join(known)}.")
    paper = known[paper_name]
    comparison = papers.paper_vs_ours(experiment)
    aspects = ("split_unit", "evaluation", "selection", "speaker_independent")
    rows = [(md.code(row["variant"]), f"`{row['paper_row']}`", md.text(row.get("metric")),
             _reported(row), _ours(row), md.delta(row.get("delta_pp", math.nan)),
             *[_aspect(row, aspect) for aspect in aspects], row["defaults"])
            for row in comparison.to_dict("records")]
    headers = ["variant", "paper row", "metric", "reported", "ours", "Δ (pp)", "split unit",
               "evaluation", "selection", "speaker-independent", "[DEFAULT] knobs"]
    defaults = papers.paper_defaults(paper_name)
    knob_rows = [(f"`{row.knob}`", row.value, row.spec)
                 for row in defaults.itertuples()]
    return "\n\n".join(part for part in (
        f"## Paper vs ours: {paper['citation']}",
        f"*{paper['comparability']}.* Protocol of the paper: {paper['protocol']['note']}.",
        "Protocol cells read *paper / ours*; a difference is in **bold**. Ours is mean ± sd "
        "over folds × seeds.", md.table(rows, headers),
        ("**[DEFAULT] knobs** (spec values no public source gives; the rows above depend on "
         "them)\n\n" + md.table(knob_rows, ["knob", "value", "spec"])) if knob_rows
        else "The spec lists no [DEFAULT] knob for this paper.") if part)



def _units(row: dict[str, Any]) -> str:
    extra = [f"{row[status]} {status}" for status in ("pruned", "failed") if row[status]]
    return str(row["finished"]) + (f" (+{', '.join(extra)})" if extra else "")


def _verdict(row: dict[str, Any]) -> str:
    return f"**{row['verdict']}**" if row["verdict"] == "significant" else row["verdict"]


def _reported(row: dict[str, Any]) -> str:
    if md.missing(row.get("reported", math.nan)):
        return row.get("note") or "—"
    return md.count(row["reported"]) if row["metric"] == "params" else f"{row['reported']:.2f}"


def _ours(row: dict[str, Any]) -> str:
    if row.get("metric") == "params":
        return md.count(row["ours_mean"])
    text = md.score(row.get("ours_mean", math.nan), row.get("ours_sd", math.nan))
    return f"{text} (n={int(row['units'])})" if text != "—" else row.get("note") or "—"


def _aspect(row: dict[str, Any], aspect: str) -> str:
    paper, ours = row[f"{aspect}_paper"], row[f"{aspect}_ours"]
    text = f"{md.plain(paper)} / {md.plain(ours)}"
    return f"**{text}**" if paper != ours else text
