"""Golden values of the report's tables on the constructed experiments (conftest.py)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from ser_ray.experiment import load_experiment
from ser_ray.papers import load_paper_results, paper_row
from ser_ray.report import ablation, papers, search, setup, units
from ser_ray.report.stats import holm, resampled_t_p
from tests.experiment.builders import study_record, unit_row, write_experiment
from tests.report.conftest import ECA_JITTER, FOLDS, LOSS_NOISE, SEEDS, baseline_ua, searched


def ablation_row(directory: Path, variant: str) -> dict:
    table = ablation.ablation_table(load_experiment(directory))
    return table.set_index("variant").loc[variant].to_dict()


def test_variant_means_and_sds_over_folds_and_seeds(one_factor_dir: Path) -> None:
    summary = units.variant_summary(load_experiment(one_factor_dir))
    baseline_scores = [baseline_ua(fold) for fold in FOLDS for _ in SEEDS]
    baseline = summary.loc["baseline"]
    assert baseline["finished"] == 10
    assert baseline["unweighted_accuracy_mean"] == pytest.approx(74.0)
    assert baseline["unweighted_accuracy_sd"] == pytest.approx(statistics.stdev(baseline_scores))
    assert baseline["macro_f1_mean"] == pytest.approx(73.0)
    eca_scores = [b + 5 + j for b, j in zip(baseline_scores, ECA_JITTER)]
    assert summary.loc["eca=on", "unweighted_accuracy_mean"] == pytest.approx(79.0)
    assert summary.loc["eca=on", "unweighted_accuracy_sd"] == pytest.approx(
        statistics.stdev(eca_scores))
    assert summary.loc["eca=on", "parameters"] == 1014
    assert summary.loc["loss=ce", ["finished", "failed"]].tolist() == [9, 1]


def test_retried_failure_is_counted_once_and_reported(one_factor_dir: Path) -> None:
    experiment = load_experiment(one_factor_dir)
    assert experiment.retried_failures == 1
    assert len(units.unit_frame(experiment)) == 30


def test_consistent_gain_is_significant(one_factor_dir: Path) -> None:
    row = ablation_row(one_factor_dir, "eca=on")
    # Seeds averaged within each fold: 5 + the mean jitter of the fold's two seeds.
    differences = [5.05, 5.05, 4.95, 4.95, 5.0]
    assert row["n_folds"] == 5
    assert row["delta_pp"] == pytest.approx(5.0)
    assert row["wilcoxon_p"] == pytest.approx(2 / 32)
    # Stratified 5-fold: the corrected resampled t (n_test/n_train = 1/4) gives the verdict.
    assert row["t_p"] == pytest.approx(resampled_t_p(differences, 0.25)[0])
    assert row["verdict"] == "significant"


def test_noise_is_within_noise(one_factor_dir: Path) -> None:
    row = ablation_row(one_factor_dir, "loss=ce")
    assert row["n_folds"] == 5  # fold 4 keeps its one finished seed
    fold_means = [np.mean(LOSS_NOISE[2 * fold:2 * fold + 2]) for fold in range(4)]
    assert row["delta_pp"] == pytest.approx(np.mean([*fold_means, LOSS_NOISE[8]]))
    assert row["holm_p"] >= 0.05
    assert row["verdict"] == "within noise"


def test_seed_spread_is_reported_per_variant(one_factor_dir: Path) -> None:
    row = ablation_row(one_factor_dir, "eca=on")
    spreads = [statistics.stdev(ECA_JITTER[2 * fold:2 * fold + 2]) for fold in FOLDS]
    assert row["seed_sd"] == pytest.approx(np.mean(spreads))


def test_holm_runs_over_every_comparison_of_the_study(one_factor_dir: Path) -> None:
    table = ablation.ablation_table(load_experiment(one_factor_dir)).set_index("variant")
    eca, loss = table.loc["eca=on", "t_p"], table.loc["loss=ce", "t_p"]
    # Two comparisons: the smaller p doubles, the larger keeps max(its own, the first).
    assert table.loc["eca=on", "holm_p"] == pytest.approx(2 * eca)
    assert table.loc["loss=ce", "holm_p"] == pytest.approx(max(2 * eca, loss))
    assert table.loc[["eca=on", "loss=ce"], "holm_p"].tolist() == pytest.approx(
        holm([eca, loss]).tolist())
    assert math.isnan(table.loc["baseline", "holm_p"])
    assert table.loc["baseline", "verdict"] == "baseline"


def test_five_folds_are_too_few_even_for_a_consistent_loss(leave_one_out_dir: Path) -> None:
    row = ablation_row(leave_one_out_dir, "-tsa")
    assert row["n_folds"] == 5
    assert row["delta_pp"] == pytest.approx(-1.7)
    assert row["wilcoxon_p"] == pytest.approx(2 / 32)
    assert row["t_p"] < 0.001  # the paired t is shown, but the Wilcoxon gives the verdict
    assert row["verdict"] == "within noise (n too small)"


def test_failed_units_are_listed_with_their_error(one_factor_dir: Path) -> None:
    failed = units.failed_units(load_experiment(one_factor_dir))
    assert failed[["variant", "fold", "seed"]].values.tolist() == [["loss=ce", 4, 1]]
    assert failed.loc[0, "error_summary"] == "FloatingPointError: loss is NaN at epoch 2"
    assert "Traceback" in failed.loc[0, "error"]


def test_partial_and_complete_studies(one_factor_dir: Path, leave_one_out_dir: Path,
                                      search_dir: Path) -> None:
    partial = units.completeness(load_experiment(one_factor_dir))
    assert (partial.partial, partial.label) == (True, "PARTIAL: 29 of 30 units")
    assert (partial.failed, partial.not_run) == (1, 0)
    complete = units.completeness(load_experiment(leave_one_out_dir))
    assert (complete.partial, complete.label) == (False, "complete: 15 of 15 units")
    search = units.completeness(load_experiment(search_dir))
    # A failed trial's units count as run (it is not retried); two trials are left.
    assert search.label == "PARTIAL: 12 of 16 units"
    assert (search.pruned, search.failed, search.replayed, search.not_run) == (2, 2, 0, 4)


def test_units_never_run_are_listed(tmp_path: Path) -> None:
    study = study_record("half", "one-factor", ["baseline", "b"], folds=(0, 1),
                              seeds=(0,), baseline="baseline")
    write_experiment(tmp_path, study, [unit_row("baseline", 0, 0, 70.0)])
    missing = units.missing_units(load_experiment(tmp_path))
    assert missing.values.tolist() == [["baseline", 1, 0], ["b", 0, 0], ["b", 1, 0]]
    assert units.completeness(load_experiment(tmp_path)).label == \
        "PARTIAL: 1 of 4 units"


def test_factorial_pivot_marks_the_best_cell(factorial_dir: Path) -> None:
    pivot = ablation.factorial_pivot(load_experiment(factorial_dir))
    assert (pivot.row_factors, pivot.column_factor) == (("scale",), "stft_version")
    assert pivot.mean.shape == (2, 3)
    assert pivot.mean.loc["2", "3"] == pytest.approx(69.25)
    assert pivot.mean.loc["1", "1"] == pytest.approx(64.25)
    assert pivot.sd.loc["2", "3"] == pytest.approx(statistics.stdev([69.0, 69.5]))
    assert (pivot.units == 2).all().all()
    assert pivot.best == ("2", "3")


def test_per_class_recall_and_pooled_confusion(one_factor_dir: Path) -> None:
    experiment = load_experiment(one_factor_dir)
    recall = units.per_class_recall_table(experiment)
    # Each unit's recalls are UA + (5, -5, 2, -2) pp.
    assert recall.loc["baseline"].tolist() == pytest.approx([79.0, 69.0, 76.0, 72.0])
    matrix = units.pooled_confusion(experiment, "baseline")
    assert matrix.shape == (4, 4)
    assert matrix.sum(axis=1).tolist() == [1000] * 4  # 10 units × 100 per class
    assert units.pooled_confusion(experiment, "no such variant") is None


def test_learning_curves_are_means_per_epoch(one_factor_dir: Path) -> None:
    curves = units.learning_curves(load_experiment(one_factor_dir), "baseline")
    test_ua = curves[curves["series"] == "test UA"].set_index("epoch")
    assert test_ua.index.tolist() == [1, 2, 3]
    assert test_ua.loc[3, "mean"] == pytest.approx(74.0)
    assert test_ua.loc[3, "units"] == 10
    assert "validation UA" not in set(curves["series"])


def test_search_tables(search_dir: Path) -> None:
    experiment = load_experiment(search_dir)
    assert search.search_counts(experiment) == {"planned": 8, "run": 6, "finished": 4,
                                                "pruned": 1, "failed": 1, "replayed": 0}
    top = search.top_trials(experiment)
    assert top["variant"].tolist() == ["trial_0003", "trial_0002", "trial_0001", "trial_0000"]
    assert top.loc[0, "objective_mean"] == pytest.approx(75.2)
    best = search.best_configuration(experiment)
    assert best["variant"] == "trial_0003"
    assert best["config"]["model.options.scale"] == 4
    history = search.optimisation_history(experiment)
    assert history["status"].tolist()[-2:] == ["pruned", "failed"]
    assert history["best_so_far"].tolist()[-1] == pytest.approx(75.2)


def test_parameter_importance_ranks_the_parameter_that_drives_the_score(
        search_dir: Path) -> None:
    importance, reason = search.parameter_importance(load_experiment(search_dir))
    assert reason is None
    # train.loss.gamma is conditional (two of four trials): only common parameters are ranked.
    assert set(importance["parameter"]) == {"train.lr", "model.options.scale",
                                            "model.options.eca_blocks"}
    assert importance.loc[0, "parameter"] == "model.options.scale"
    assert importance["importance"].sum() == pytest.approx(1.0)


def test_parameter_importance_needs_two_finished_trials(tmp_path: Path) -> None:
    space = {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
    study = study_record("tiny", "search", [], folds=(0,), seeds=(0,), trials=2,
                         space=searched(space))
    write_experiment(tmp_path, study, [unit_row("trial_0000", 0, 0, 60.0,
                                                config={"train.lr": 1e-3})])
    importance, reason = search.parameter_importance(load_experiment(tmp_path))
    assert importance.empty
    assert reason == "1 finished trial(s); importance needs at least 2"


def test_paper_vs_ours_carries_values_protocol_and_unknown_rows(
        leave_one_out_dir: Path) -> None:
    comparison = papers.paper_vs_ours(load_experiment(leave_one_out_dir))
    full_ua = comparison[(comparison["variant"] == "full") & (comparison["metric"] == "UA")]
    assert full_ua["reported"].item() == pytest.approx(72.72)
    assert full_ua["ours_mean"].item() == pytest.approx(73.0)
    assert full_ua["delta_pp"].item() == pytest.approx(0.28)
    assert (full_ua["evaluation_paper"].item(), full_ua["evaluation_ours"].item()) == \
        ("single split", "k-fold mean")
    assert (full_ua["selection_paper"].item(), full_ua["selection_ours"].item()) == \
        ("best-test", "last")
    params = comparison[(comparison["variant"] == "-lct") & (comparison["metric"] == "params")]
    assert (params["reported"].item(), params["ours_mean"].item()) == (1031674, 294058)
    assert comparison.loc[comparison["variant"] == "ghost", "note"].item() == \
        "unknown paper row"


def test_paper_results_hold_every_paper_with_protocol_and_defaults() -> None:
    known = load_paper_results()
    assert set(known) == {"kim2024", "tang2024", "lee2025", "kundu2024"}
    assert paper_row("kim2024", "ablation_table_V.cnn+stft_aug+our_eca") == \
        {"UA": 80.28, "WA": 80.46, "ACC": 80.37}
    assert paper_row("lee2025", "paper.EMO-DB") == {"WA": 99.53}
    assert paper_row("kundu2024", "mean_accuracy_5fold.Emo-DB") == {"WA": 97.19}
    assert known["lee2025"]["protocol"]["split_unit"] == "row"
    assert "model.options.base_width" in set(papers.paper_defaults("kim2024")["knob"])
    with pytest.raises(KeyError, match="rows: .*iemocap_4class"):
        paper_row("tang2024", "iemocap")


def test_a_study_that_varies_the_selection_rule_reports_every_rule(tmp_path: Path) -> None:
    study = study_record("varied", "one-factor", ["baseline", "rule=test"], folds=(0,),
                         seeds=(0,), baseline="baseline", selections={"rule=test": "best-test"})
    optimistic = unit_row("rule=test", 0, 0, 75.0, selection="best-test")
    write_experiment(tmp_path, study, [unit_row("baseline", 0, 0, 70.0), optimistic])
    experiment = load_experiment(tmp_path)
    assert setup.selection_rule(experiment) == "best-test + last"
    from ser_ray.report import write_report

    assert "OPTIMISTIC" in write_report(tmp_path).read_text()
