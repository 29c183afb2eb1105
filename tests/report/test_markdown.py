"""report.md, figures, results.csv and progress.md text rendered from constructed ledgers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ser_ray.report import render_progress, write_report

IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


@pytest.fixture(scope="module")
def reports(one_factor_dir: Path, leave_one_out_dir: Path, factorial_dir: Path,
            search_dir: Path) -> dict[str, str]:
    # Two featured variants keep the factorial and search renders quick (figures dominate).
    return {"one-factor": write_report(one_factor_dir).read_text(),
            "leave-one-out": write_report(leave_one_out_dir).read_text(),
            "factorial": write_report(factorial_dir, featured=2).read_text(),
            "search": write_report(search_dir, featured=2).read_text()}


def table_line(report: str, first_cell: str) -> str:
    return next(line for line in report.splitlines() if line.startswith(f"| {first_cell} "))


def test_header_states_protocol_selection_and_provenance(reports: dict[str, str]) -> None:
    report = reports["one-factor"]
    assert report.startswith("# eca-one-factor\n")
    assert "**SPEAKER-DEPENDENT**" in report
    assert "**OPTIMISTIC: epoch selected on the test folds**" in report
    for expected in ("angry 100, happy 100", "folds 0, 1, 2, 3, 4 × seeds 0, 1", "`d98d739`",
                     "`0123456789abcdef`", "numpy 2.2.0", "2 CPUs; GPUs: none"):
        assert expected in report
    assert "speaker-independent (speaker)" in reports["leave-one-out"]
    assert "SPEAKER-DEPENDENT" not in reports["leave-one-out"]


def test_effective_training_settings_are_listed_against_the_paper(
        reports: dict[str, str]) -> None:
    report = reports["one-factor"]
    settings = report[report.index("**Training settings**"):report.index("**Skipped inputs**")]
    assert "departs from the paper training of eca_cnn" in settings
    assert re.search(r"\| epochs +\| 3 ★ +\| 150 ", settings)
    assert re.search(r"\| epoch selection +\| best-test \(OPTIMISTIC\) ★ +\| last ", settings)
    assert re.search(r"\| optimizer +\| adam \(β 0.9, 0.999; weight decay 0\) +\| adam", settings)
    assert re.search(r"\| loss +\| varies \(below\) +\| focal \(γ 2, inverse-frequency α\)",
                     settings)
    # The variant that changes the loss departs from the paper's; the others keep it.
    assert re.search(r"\| `loss=ce` +\| cross-entropy ★ ", settings)
    assert re.search(r"\| `baseline` +\| focal \(γ 2, inverse-frequency α\) +\|", settings)
    search = reports["search"]
    assert "Settings that vary, per trial" in search and "| `trial_0003` " in search


def test_skipped_inputs_are_counted_per_reason_and_listed(reports: dict[str, str]) -> None:
    report = reports["one-factor"]
    assert "**Skipped inputs**: 12" in report
    assert re.search(r"\| scan +\| too_short +\| 8 ", report)
    assert re.search(r"\| features +\| decode_error +\| 4 ", report)
    assert "<details><summary>all 12 skipped inputs</summary>" in report
    assert "`/data/synth/f3.wav`" in report
    assert "**Skipped inputs**: none" in reports["search"]


def test_partial_study_is_marked_and_complete_one_is_not(reports: dict[str, str]) -> None:
    assert "> **PARTIAL: 29 of 30 units**" in reports["one-factor"]
    assert "> **PARTIAL: 12 of 16 units**" in reports["search"]
    assert "PARTIAL" not in reports["leave-one-out"]
    assert "complete: 15 of 15 units" in reports["leave-one-out"]


def test_ablation_table_rows(reports: dict[str, str]) -> None:
    report = reports["one-factor"]
    report = report[report.index("## Ablation"):]
    eca = table_line(report, "`eca=on`")
    assert "79.00 ± 2.96" in eca and "+5.00" in eca and "**significant**" in eca
    loss = table_line(report, "`loss=ce`")
    assert "9 (+1 failed)" in loss and "within noise" in loss
    assert "baseline" in table_line(report, "`baseline`")
    assert "m = 2 comparisons" in report
    assert "model.options.eca_blocks=[5, 6]" in report
    leave_one_out = reports["leave-one-out"]
    assert "within noise (n too small)" in table_line(
        leave_one_out[leave_one_out.index("## Ablation"):], "`-tsa`")


def test_failed_units_are_listed_never_dropped(reports: dict[str, str]) -> None:
    report = reports["one-factor"]
    failures = report[report.index("## Failed and missing units"):]
    assert "`FloatingPointError: loss is NaN at epoch 2`" in table_line(failures, "`loss=ce`")
    assert "Traceback (most recent call last)" in failures
    assert "1 earlier failed attempt(s) were retried successfully" in failures
    assert "No unit failed." in reports["leave-one-out"]


def test_factorial_pivot_marks_the_best_cell(reports: dict[str, str]) -> None:
    report = reports["factorial"]
    assert "## Factorial: UA by scale × stft_version" in report
    best_row = table_line(report, "2")
    assert best_row.rstrip(" |").endswith("**69.25 ± 0.35** ★")
    assert "★" not in table_line(report, "1")
    assert ("Best cell ★ by mean UA: scale = 2, stft_version = 3 — **OPTIMISTIC: "
            "configuration selected on the test folds**.") in report
    assert "![UA by stft_version](figures/factorial.png)" in report
    assert "Wilcoxon p" not in report  # no baseline: no test columns
    # Six cells, two featured: the best two get figures.
    assert "### `scale=2,v=3`" in report and "### `scale=2,v=2`" in report
    assert "### `scale=1,v=1`" not in report


def test_search_sections(reports: dict[str, str]) -> None:
    report = reports["search"]
    assert "4 finished, 1 pruned, 1 failed" in report
    assert "### Best configuration: `trial_0003`" in report
    top = table_line(report, "1")
    assert top.startswith("| 1      | `trial_0003`")
    assert top.rstrip(" |").endswith("—")  # train.loss.gamma was not sampled for scale 4
    importance = report[report.index("### Parameter importance"):]
    assert table_line(importance, "`model.options.scale`")
    assert "figures/optimisation_history.png" in report
    assert "| `trial_0004` | pruned" in report
    assert "Shown: 2 variant(s) — the best finished trials (up to 2)." in report
    assert "### `trial_0003`" in report and "### `trial_0001`" not in report


def test_paper_vs_ours_table(reports: dict[str, str]) -> None:
    report = reports["leave-one-out"]
    section = report[report.index("## Paper vs ours"):]
    assert "comparable by construction" in section
    full_ua = next(line for line in section.splitlines()
                   if line.startswith("| `full`") and "| UA " in line)
    for cell in ("72.72", "73.00 ± 0.79 (n=5)", "+0.28", "**single split / k-fold mean**",
                 "**best-test / last**", "**no / yes**", "utterance / utterance"):
        assert cell in full_ua
    assert "unknown paper row" in table_line(section, "`ghost`")
    assert "## Paper vs ours" not in reports["one-factor"]


def test_every_figure_exists_and_is_linked_relatively(
        reports: dict[str, str], one_factor_dir: Path, leave_one_out_dir: Path,
        factorial_dir: Path, search_dir: Path) -> None:
    directories = {"one-factor": one_factor_dir, "leave-one-out": leave_one_out_dir,
                   "factorial": factorial_dir, "search": search_dir}
    for design, directory in directories.items():
        links = IMAGE_LINK.findall(reports[design])
        assert links, design
        for link in links:
            assert link.startswith("figures/") and link.endswith(".png"), link
            assert (directory / link).stat().st_size > 1000, link
    one_factor = IMAGE_LINK.findall(reports["one-factor"])
    assert {"figures/confusion_01_eca_on.png", "figures/curves_01_eca_on.png",
            "figures/deltas_vs_baseline.png"} <= set(one_factor)


def test_results_csv_has_one_row_per_unit(reports: dict[str, str],
                                          one_factor_dir: Path) -> None:
    results = pd.read_csv(one_factor_dir / "results.csv")
    assert len(results) == 30
    assert {"variant", "config", "fold", "seed", "status", "unweighted_accuracy",
            "weighted_accuracy", "ua_wa_mean", "macro_f1"} <= set(results.columns)
    assert results["status"].value_counts().to_dict() == {"finished": 29, "failed": 1}
    failed = results[results["status"] == "failed"].iloc[0]
    assert (failed["variant"], failed["fold"], failed["seed"]) == ("loss=ce", 4, 1)
    assert pd.isna(failed["unweighted_accuracy"])
    eca = results[results["variant"] == "eca=on"]
    assert json.loads(eca["config"].iloc[0]) == {}
    baseline_first = results[(results["variant"] == "baseline") & (results["fold"] == 0)]
    assert baseline_first["unweighted_accuracy"].tolist() == pytest.approx([0.70, 0.70])


def test_report_is_rebuilt_identically_from_the_directory(reports: dict[str, str],
                                                          one_factor_dir: Path) -> None:
    assert write_report(one_factor_dir).read_text() == reports["one-factor"]


def test_progress_summary(one_factor_dir: Path, search_dir: Path) -> None:
    progress = render_progress(one_factor_dir)
    assert "**29 of 30 units** recorded: 29 finished, 0 pruned; 1 failed" in progress
    assert "Best so far by UA: **eca=on** 79.00 ± 2.96 %" in progress
    assert "- loss=ce, fold 4, seed 1: `FloatingPointError: loss is NaN at epoch 2`" in progress
    search = render_progress(search_dir)
    assert "12 of 16 units" in search and "2 pruned" in search
    assert "**trial_0003**" in search


def test_empty_ledger_renders_a_header_only(tmp_path: Path, one_factor_dir: Path) -> None:
    (tmp_path / "study.json").write_text((one_factor_dir / "study.json").read_text())
    report = write_report(tmp_path).read_text()
    assert "No unit has been recorded yet." in report
    assert "PARTIAL: 0 of 30 units" in report


def test_report_package_imports_neither_ray_nor_torch() -> None:
    code = ("import sys, ser_ray.report; "
            "print('torch' in sys.modules, 'ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["False", "False"]


def test_the_progress_page_draws_every_configuration_and_the_best_so_far(
        search_dir: Path, tmp_path: Path) -> None:
    """progress.md carries a PNG of each configuration's objective per epoch (stopped and
    failed ones apart) and of the best configuration after each one ended."""
    import shutil

    from ser_ray.experiment import load_experiment, ranking
    from ser_ray.report import units
    from ser_ray.report.markdown import write_progress

    directory = shutil.copytree(search_dir, tmp_path / "search")
    experiment = load_experiment(directory)
    curves = units.objective_curves(experiment)
    assert curves["trial_0004"][2] is False and curves["trial_0001"][2] is True
    epochs, values, _ = curves["trial_0004"]
    own = experiment.rows_of("trial_0004")
    assert list(epochs) == [1] and values[0] == pytest.approx(
        100 * sum(row.history[0].test.unweighted_accuracy for row in own) / len(own))
    best = units.best_so_far_curve(experiment)
    assert len(best) == len({row.variant for row in experiment.rows})
    assert all(later >= earlier for earlier, later in zip(best, best[1:]))
    assert best[-1] == pytest.approx(100 * ranking(experiment)[0].mean)
    text = write_progress(directory).read_text()
    assert "![progress](figures/progress.png)" in text
    assert (directory / "figures" / "progress.png").read_bytes().startswith(b"\x89PNG")
