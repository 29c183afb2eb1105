"""What a report claims about its own numbers: configurations chosen on the test folds,
trials that replayed or failed, the study's declared order, importances from few trials, and
paths without the machine that ran the study."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ser_ray.experiment import load_experiment
from ser_ray.experiment.study_record import FeatureSetRecord, SkippedInput
from ser_ray.report import ablation, render_progress, search, units, write_report
from tests.experiment.builders import (
    replay_row,
    study_record,
    unit_row,
    write_experiment,
)
from tests.report.conftest import searched

OPTIMISTIC_CONFIGURATION = "**OPTIMISTIC: configuration selected on the test folds**"
LR_SPACE = {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}


def search_study(directory: Path, trials: dict[str, tuple[float, float, float]], *,
                 planned: int, objective: str = "unweighted_accuracy", replays=()) -> Path:
    """One-parameter search over two folds; trial → (lr, test UA %, validation UA %)."""
    rows = [unit_row(trial, fold, 0, test + 0.5 * fold, config={"train.lr": lr},
                     validation_percent=validation + 0.5 * fold)
            for trial, (lr, test, validation) in trials.items() for fold in (0, 1)]
    study = study_record("lr-search", "search", [], folds=(0, 1), seeds=(0,), trials=planned,
                         space=searched(LR_SPACE), objective=objective)
    return write_experiment(directory, study, rows, replays)


def test_a_search_ranked_by_a_test_metric_is_optimistic(search_dir: Path) -> None:
    report = write_report(search_dir, featured=0).read_text()
    header = report[:report.index("## Setup")]
    assert f"> {OPTIMISTIC_CONFIGURATION}: trials were ranked and pruned by their test UA" \
        in header
    assert f"UA 75.20 ± 0.28 % over 2 units — {OPTIMISTIC_CONFIGURATION}." in report
    assert re.search(r"\| configuration selection +\| trials are ranked and pruned, and the "
                     r"best chosen, by mean UA over folds — \*\*OPTIMISTIC", report)
    assert OPTIMISTIC_CONFIGURATION in render_progress(search_dir)


def test_a_search_ranked_on_validation_shows_the_test_score_it_got(tmp_path: Path) -> None:
    # Validation prefers trial_0000, which scores worst on test.
    directory = search_study(tmp_path, {"trial_0000": (1e-3, 60.0, 80.0),
                                        "trial_0001": (3e-3, 75.0, 70.0)},
                             planned=2, objective="validation_unweighted_accuracy")
    experiment = load_experiment(directory)
    frame = units.unit_frame(experiment)
    assert frame["validation_unweighted_accuracy"].tolist() == pytest.approx(
        [0.80, 0.805, 0.70, 0.705])
    assert search.top_trials(experiment)["variant"].tolist() == ["trial_0000", "trial_0001"]
    report = write_report(directory, featured=0).read_text()
    assert "OPTIMISTIC" not in report
    assert ("Chosen by validation UA 80.25 ± 0.35 %; its test UA: **60.25 ± 0.35 %** over 2 "
            "units.") in report
    assert re.search(r"\| rank +\| trial +\| validation UA \(%\) +\| test UA \(%\) +\|", report)
    assert re.search(r"\| 1 +\| `trial_0000` +\| 80.25 ± 0.35 +\| 60.25 ± 0.35 +\|", report)
    assert "validation UA (unweighted accuracy on the validation split), maximised" in report
    assert "and reported with its test UA" in report
    assert ("Best so far by validation UA: **trial_0000** 80.25 ± 0.35 % over 2 units; its "
            "test UA: 60.25 ± 0.35 %.") in render_progress(directory)


def test_a_search_whose_last_trial_replayed_is_complete(tmp_path: Path) -> None:
    directory = search_study(tmp_path, {"trial_0000": (1e-3, 60.0, 60.0),
                                        "trial_0001": (3e-3, 65.0, 65.0)},
                             planned=3, replays=[replay_row("trial_0002", "trial_0000")])
    done = units.completeness(load_experiment(directory))
    assert (done.partial, done.label) == (False, "complete: 6 of 6 units")
    assert (done.replayed, done.not_run) == (2, 0)
    report = write_report(directory, featured=0).read_text()
    assert "PARTIAL" not in report and "not run yet" not in report
    assert "Trials: 3 of 3 run — 2 finished, 0 pruned, 0 failed, 1 replayed" in report
    assert re.search(r"\| `trial_0002` +\| `trial_0000` +\| — +\|", report)
    assert "**6 of 6 units** recorded: 4 finished, 0 pruned, 2 replayed; 0 failed; 0 not run " \
        "yet." in render_progress(directory)


def test_failed_search_trials_are_not_said_to_be_rerun(search_dir: Path,
                                                       one_factor_dir: Path) -> None:
    advice = ("A failed search trial is not retried: it used its place in the trial budget. "
              "To try more configurations, raise `budget.trials` and resume.")
    for text in (write_report(search_dir, featured=0).read_text(), render_progress(search_dir)):
        assert advice in text
        assert "resume reruns" not in text
    for text in (write_report(one_factor_dir, featured=0).read_text(),
                 render_progress(one_factor_dir)):
        assert "A resume reruns them." in text
        assert "not retried" not in text


def test_factors_and_levels_keep_their_declared_order(tmp_path: Path) -> None:
    widths, activations = ["8", "2", "16"], ["relu", "gelu"]
    cells = [(width, activation) for width in widths for activation in activations]
    names = {cell: f"width={cell[0]}, act={cell[1]}" for cell in cells}
    rows = [unit_row(names[cell], fold, 0, 60.0 + int(cell[0]) + fold,
                     factors={"width": cell[0], "act": cell[1]})
            for cell in cells for fold in (0, 1)]
    study = study_record(
        "ordered", "factorial", list(names.values()), folds=(0, 1), seeds=(0,),
        baseline=names[cells[0]], factors={"width": widths, "act": activations},
        variant_factors={names[cell]: {"width": cell[0], "act": cell[1]} for cell in cells},
        changes={names[cell]: {"model.options.width": int(cell[0]),
                               "model.options.activation": cell[1]} for cell in cells})
    directory = write_experiment(tmp_path, study, rows)
    experiment = load_experiment(directory)
    pivot = ablation.factorial_pivot(experiment)
    assert (pivot.row_factors, pivot.column_factor) == (("width",), "act")
    assert pivot.mean.index.tolist() == widths
    assert pivot.mean.columns.tolist() == activations
    assert units.unit_frame(experiment).columns[-2:].tolist() == ["factor.width", "factor.act"]
    report = write_report(directory, featured=0).read_text()
    assert "factors width ∈ 8, 2, 16; act ∈ relu, gelu" in report
    pivot_lines = [line for line in report.splitlines() if line.startswith("| ")
                   and "width \\ act" in line]
    assert re.match(r"\| width \\ act +\| relu +\| gelu +\|", pivot_lines[0])
    table = report[report.index("## Factorial"):report.index("### Every cell")]
    firsts = [line.split("|")[1].strip() for line in table.splitlines()
              if re.match(r"\| \d", line)]
    assert firsts == widths
    every_cell = report[report.index("### Every cell"):]
    order = [line.split("`")[1] for line in every_cell.splitlines()
             if line.startswith("| `width=")][:len(cells)]
    assert order == list(names.values())
    assert re.search(r'\| `width=8, act=relu` +\| model\.options\.width=8; '
                     r'model\.options\.activation="relu" +\|', every_cell)


def test_importances_have_two_significant_digits_and_few_trials_are_flagged(
        search_dir: Path, tmp_path: Path) -> None:
    report = write_report(search_dir, featured=0).read_text()
    section = report[report.index("### Parameter importance"):report.index("### Optimisation")]
    cells = re.findall(r"\| `[\w.]+` +\| ([^ |]+) +\|", section)
    assert len(cells) == 3
    assert all(re.fullmatch(r"0\.\d\d|0\.0\d\d?|1\.0", cell) for cell in cells), cells
    assert ("**Not reliable**: 4 finished trials for 3 parameters, fewer than 10 per "
            "parameter") in section
    assert search.importance_is_reliable(10, 1)
    assert not search.importance_is_reliable(29, 3)
    # Ten finished trials for one parameter: no warning; its importance is all of it.
    trials = {f"trial_{n:04d}": (1e-4 * 1.5 ** n, 60.0 + n, 60.0) for n in range(10)}
    enough = write_report(search_study(tmp_path, trials, planned=10), featured=0).read_text()
    section = enough[enough.index("### Parameter importance"):]
    assert "Not reliable" not in section
    assert re.search(r"\| `train.lr` +\| 1\.0 +\|", section)


def test_reports_show_no_absolute_path_of_the_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    directory = tmp_path / "experiment"
    monkeypatch.setenv("HOME", str(home))
    study = study_record(
        "paths", "one-factor", ["baseline"], folds=(0,), seeds=(0,), baseline="baseline",
        skipped=[SkippedInput(stage="scan", path=f"{directory}/corpus/a.wav",
                              reason_code="too_short", reason=f"{directory}/corpus/a.wav is "
                              "shorter than 0.1 s"),
                 SkippedInput(stage="scan", path="/data/b.wav", reason_code="too_short",
                              reason="shorter than 0.1 s")])
    study = study.model_copy(update={
        "corpus": study.corpus.model_copy(update={"root": f"{home}/corpora/iemocap",
                                                  "manifest": f"{directory}/manifest.parquet"}),
        "features": tuple(FeatureSetRecord(**{**feature.model_dump(),
                                              "path": f"{directory}/cache/{feature.cache_key}"})
                          for feature in study.features),
        "trial_storage": f"{directory}/tune"})
    failed = unit_row("baseline", 0, 0, None, status="failed").model_copy(
        update={"error": f'File "{home}/ser/loop.py", line 1\nOSError: {directory}/tune/x'})
    write_experiment(directory, study, [failed])
    report = write_report(directory, featured=0).read_text() + render_progress(directory)
    assert str(directory) not in report and str(home) not in report
    for shown in ("root `~/corpora/iemocap`; manifest `manifest.parquet`",
                  "`cache/0123456789abcdef`", "`corpus/a.wav`",
                  "corpus/a.wav is shorter than 0.1 s", 'File "~/ser/loop.py"',
                  "`OSError: tune/x`"):
        assert shown in report, shown
    assert re.search(r"\| trial storage +\| `tune` +\|", report)
    assert "`/data/b.wav`" in report  # outside both: as recorded
