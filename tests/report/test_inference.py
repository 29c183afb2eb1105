"""Inference over folds, the study's independent units: seeds averaged within each fold,
the corrected resampled t for stratified splits, and Holm over every comparison."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from scipy import stats

from ser_ray.experiment import load_experiment
from ser_ray.experiment.study_record import ProtocolRecord
from ser_ray.report import ablation, write_report
from tests.experiment.builders import study_record, unit_row, write_experiment

# Fold differences (pp) whose exact two-sided Wilcoxon p is 0.125 (one negative, rank 1)
# and whose paired t p is 0.0718.
FOLD_DIFFERENCES = (1.0, 2.0, -0.5, 3.0, 4.0)


def comparison(directory: Path, variant: str) -> dict:
    table = ablation.ablation_table(load_experiment(directory))
    return table.set_index("variant").loc[variant].to_dict()


def speaker_folds_study(directory: Path, seeds: int) -> Path:
    """Every seed of a fold repeats the fold's difference; the baseline moves with the seed."""
    folds = range(len(FOLD_DIFFERENCES))
    rows = [unit_row(name, fold, seed, 70.0 + fold + 2 * seed + shift)
            for fold, difference in zip(folds, FOLD_DIFFERENCES) for seed in range(seeds)
            for name, shift in (("baseline", 0.0), ("variant", difference))]
    study = study_record("seeds", "one-factor", ["baseline", "variant"], folds=tuple(folds),
                         seeds=tuple(range(seeds)), baseline="baseline",
                         speaker_independent=True)
    return write_experiment(directory, study, rows)


@pytest.mark.parametrize("seeds", [1, 2, 3, 4])
def test_repeating_fold_differences_over_seeds_leaves_the_p_value_alone(
        tmp_path: Path, seeds: int) -> None:
    row = comparison(speaker_folds_study(tmp_path, seeds), "variant")
    assert row["n_folds"] == 5
    assert row["delta_pp"] == pytest.approx(1.9)
    assert row["wilcoxon_p"] == pytest.approx(0.125)
    assert row["t_p"] == pytest.approx(stats.ttest_1samp(FOLD_DIFFERENCES, 0.0).pvalue)
    assert row["t_p"] == pytest.approx(0.0718, abs=1e-4)
    # Five folds, whatever the seeds: the Wilcoxon cannot reach 0.05.
    assert row["verdict"] == "within noise (n too small)"
    # Seed spread is reported apart: the seeds' scores in a fold are 2 pp apart.
    if seeds > 1:
        assert row["seed_sd"] == pytest.approx(statistics.stdev(range(0, 2 * seeds, 2)))
    else:
        assert math.isnan(row["seed_sd"])


def test_repeated_stratified_folds_use_the_corrected_resampled_t(tmp_path: Path) -> None:
    # 2 repeats × 5 splits: J = 10 folds, n_test/n_train = 1/4. d = 1..5 twice: mean 3,
    # s² = 20/9, variance (1/10 + 1/4) · 20/9 = 7/9, t = 3 / √(7/9) = 9/√7 = 3.402 with 9
    # degrees of freedom → two-sided p = 0.00786 (the plain t would give 0.00029).
    differences = [1.0, 2.0, 3.0, 4.0, 5.0] * 2
    folds = tuple(range(10))
    rows = [unit_row("baseline", fold, 0, 70.0) for fold in folds]
    rows += [unit_row("variant", fold, 0, 70.0 + d) for fold, d in zip(folds, differences)]
    protocol = ProtocolRecord(kind="stratified", k=5, repeats=2, seed=0,
                              speaker_independent=False, description="2 × 5-fold")
    study = study_record("repeated", "one-factor", ["baseline", "variant"], folds=folds,
                         seeds=(0,), baseline="baseline", protocol=protocol)
    directory = write_experiment(tmp_path, study, rows)
    row = comparison(directory, "variant")
    assert row["n_folds"] == 10
    assert row["t_p"] == pytest.approx(2 * stats.t.sf(9 / math.sqrt(7), 9))
    assert row["t_p"] == pytest.approx(0.00786, abs=1e-5)
    assert row["holm_p"] == pytest.approx(row["t_p"])  # one comparison: m = 1
    assert row["verdict"] == "significant"
    report = write_report(directory, featured=0).read_text()
    assert "| corrected t p " in report
    assert "10 planned = 2 repeats × 5 splits" in report
    assert "the verdict comes from the corrected resampled t-test of Nadeau & Bengio" in report
    assert ("2/2^10 = 0.001953 (it is shown for reference; the corrected t has no such "
            "floor)") in report
    assert "other random stratified splits of these same utterances" in report


def test_an_untestable_comparison_counts_in_holm_at_p_one(tmp_path: Path) -> None:
    """Six speaker folds: `gain` is +5 pp on every fold (p = 2/64), `same` equals the
    baseline (no test), `noise` goes both ways. m = 3, not 2."""
    folds = tuple(range(6))
    noise = (0.4, -0.3, 0.2, -0.6, 0.5, -0.1)
    rows = [unit_row(name, fold, 0, 70.0 + fold + shift)
            for fold in folds
            for name, shift in (("baseline", 0.0), ("gain", 5.0), ("same", 0.0),
                                ("noise", noise[fold]))]
    study = study_record("family", "one-factor", ["baseline", "gain", "same", "noise"],
                         folds=folds, seeds=(0,), baseline="baseline",
                         speaker_independent=True)
    directory = write_experiment(tmp_path, study, rows)
    table = ablation.ablation_table(load_experiment(directory)).set_index("variant")
    assert math.isnan(table.loc["same", "wilcoxon_p"])
    assert table.loc["same", "note"] == "all paired differences are zero"
    assert table.loc["same", "holm_p"] == pytest.approx(1.0)
    assert table.loc["gain", "wilcoxon_p"] == pytest.approx(2 / 64)
    # Smallest of three: 3 · 2/64 = 0.094 (dropping `same` would have made it 0.0625).
    assert table.loc["gain", "holm_p"] == pytest.approx(3 * 2 / 64)
    assert table.loc["gain", "verdict"] == "within noise"
    assert table.loc["same", "verdict"] == "within noise"
    report = write_report(directory, featured=0).read_text()
    assert "over all m = 3 comparisons of this table" in report
    assert "counts with p = 1" in report
    assert "**which gives the verdict**" in report
    assert "these 6 speaker folds" in report and "not to new speakers" in report


def test_no_report_text_asks_for_more_seeds_to_reach_significance(
        one_factor_dir: Path, leave_one_out_dir: Path) -> None:
    for directory in (one_factor_dir, leave_one_out_dir):
        report = write_report(directory, featured=0).read_text()
        assert "they add no observation" in report
        assert "more seeds" not in report and "seeds: 2" not in report
