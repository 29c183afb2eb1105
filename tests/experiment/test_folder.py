"""An experiment folder as a whole: its records round-trip, the one ranking, and folders of
another record format refused with what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ser_ray.cli import main
from ser_ray.errors import UserError
from ser_ray.experiment import (
    LEDGER_FILE,
    SCHEMA_VERSION,
    STUDY_FILE,
    best,
    load_experiment,
    ranking,
    read_study_record,
    variant_order,
)
from ser_ray.report.units import variant_summary
from tests.experiment.builders import study_record, unit_row, write_experiment
from tests.study.builders import write_study


def three_variants(tmp_path: Path, design: str = "one-factor") -> Path:
    names = ["baseline", "a", "b"] if design != "search" else []
    study = study_record("ranked", design, names, folds=(0, 1), seeds=(0,),
                         baseline="baseline" if design != "search" else None, trials=3)
    rows = [unit_row("baseline", fold, 0, 70.0) for fold in (0, 1)]
    rows += [unit_row("a", 0, 0, 80.0), unit_row("a", 1, 0, 40.0, status="pruned")]
    rows += [unit_row("b", fold, 0, 75.0) for fold in (0, 1)]
    return write_experiment(tmp_path, study, rows)


def test_the_study_record_round_trips_whole(tmp_path: Path) -> None:
    record = study_record("whole", "one-factor", ["baseline", "x"], folds=(0, 1), seeds=(0, 1),
                          baseline="baseline", changes={"x": {"train.lr": 0.01}})
    write_experiment(tmp_path, record, [])
    assert read_study_record(tmp_path) == record
    # A rewrite (a resumed run) keeps when the study first started.
    later = record.model_copy(update={"started_at": "2030-01-01T00:00:00"})
    write_experiment(tmp_path, later, [])
    assert read_study_record(tmp_path).started_at == record.started_at


def test_an_ablation_ranks_by_the_mean_of_finished_units(tmp_path: Path) -> None:
    experiment = load_experiment(three_variants(tmp_path))
    ranked = ranking(experiment)
    # a's pruned unit never scores: a ranks on its one finished unit (80).
    assert [(entry.variant, entry.units) for entry in ranked] == [("a", 1), ("b", 2),
                                                                  ("baseline", 2)]
    assert ranked[0].mean == pytest.approx(0.80) and ranked[1].sd == pytest.approx(0.0)
    summary = variant_summary(experiment)
    assert summary.loc["b", "unweighted_accuracy_mean"] == pytest.approx(100 * ranked[1].mean)


def test_a_search_ranks_only_trials_that_finished_on_every_fold(tmp_path: Path) -> None:
    experiment = load_experiment(three_variants(tmp_path, "search"))
    assert variant_order(experiment) == ["a", "b", "baseline"]
    assert [entry.variant for entry in ranking(experiment)] == ["b", "baseline"]
    assert best(experiment).variant == "b"


def test_ties_keep_the_variant_order(tmp_path: Path) -> None:
    study = study_record("tied", "one-factor", ["baseline", "x", "y"], folds=(0,), seeds=(0,),
                         baseline="baseline")
    rows = [unit_row(name, 0, 0, 70.0) for name in ("y", "x", "baseline")]
    write_experiment(tmp_path, study, rows)
    assert [entry.variant for entry in ranking(load_experiment(tmp_path))] == \
        ["baseline", "x", "y"]


def test_a_folder_of_an_older_format_is_refused_saying_what_to_do(tmp_path: Path,
                                                                  capsys) -> None:
    folder = three_variants(tmp_path / "old")
    record = json.loads((folder / STUDY_FILE).read_text())
    del record["schema_version"]
    (folder / STUDY_FILE).write_text(json.dumps(record))
    with pytest.raises(UserError, match="unversioned format.*new directory"):
        load_experiment(folder)
    assert main(["report", str(folder)]) == 2
    assert "ser-ray search STUDY.yaml --out NEW_DIR" in capsys.readouterr().err


def test_a_ledger_line_of_another_format_is_refused_naming_the_line(tmp_path: Path) -> None:
    folder = three_variants(tmp_path)
    lines = (folder / LEDGER_FILE).read_text().splitlines()
    newer = json.loads(lines[1])
    newer["schema_version"] = SCHEMA_VERSION + 1
    (folder / LEDGER_FILE).write_text("\n".join([lines[0], json.dumps(newer), *lines[2:]]) + "\n")
    newer_format = rf"line 2 is in format {SCHEMA_VERSION + 1}.*upgrade ser-ray"
    with pytest.raises(UserError, match=newer_format):
        load_experiment(folder)


def test_resuming_an_older_folder_is_refused_before_anything_is_written(tmp_path: Path,
                                                                        capsys) -> None:
    folder = three_variants(tmp_path / "old")
    write_study(folder / "study.yaml", "ranked", budget={"epochs": 1},
                ablation={"design": "one-factor", "factors": {"eca": {"levels": {
                    "off": {}, "on": {"model.options.eca_blocks": [5, 6]}}}}})
    old_row = {key: value for key, value in
               json.loads((folder / LEDGER_FILE).read_text().splitlines()[0]).items()
               if key != "schema_version"}
    (folder / LEDGER_FILE).write_text(json.dumps(old_row) + "\n")
    before = sorted(path.name for path in folder.iterdir())
    assert main(["resume", str(folder), "--cache", str(tmp_path / "cache")]) == 2
    assert "unversioned format" in capsys.readouterr().err
    assert sorted(path.name for path in folder.iterdir()) == before
    shutil.rmtree(folder)


def test_a_sampled_best_test_rule_marks_the_study_optimistic(tmp_path: Path) -> None:
    """A search that chooses on validation but samples `train.selection` has picked some
    configurations' epochs on their test splits: the experiment says so."""
    study = study_record("rules", "search", [], folds=(0, 1), seeds=(0,), trials=2,
                         objective="validation_unweighted_accuracy")
    honest = [unit_row("trial_0001", fold, 0, 70.0, validation_percent=60.0) for fold in (0, 1)]
    experiment = load_experiment(write_experiment(tmp_path / "honest", study, honest))
    assert not experiment.selects_on_test and not experiment.selects_epochs_on_test
    sampled = honest + [unit_row("trial_0002", fold, 0, 75.0, validation_percent=65.0,
                                 selection="best-test") for fold in (0, 1)]
    experiment = load_experiment(write_experiment(tmp_path / "sampled", study, sampled))
    assert not experiment.selects_on_test and experiment.selects_epochs_on_test
