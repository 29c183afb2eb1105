"""Trial storage by URI: checkpoints go where storage_path points, the best model comes back
from there, and the experiment directory keeps the ledger, Optuna and the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ser_ray.cli import main
from ser_ray.errors import UserError
from ser_ray.experiment import read_ledger
from ser_ray.study.best import BEST_MODEL, MissingCheckpoint, export_best_model
from ser_ray.study.schema import load_study
from ser_ray.study.storage import storage_child
from ser_ray.train.loop import DESCRIPTION_FILE
from tests.study.builders import ECA, write_study


@pytest.mark.parametrize(("root", "joined"), [
    ("s3://bucket/prefix?region=eu-west-1", "s3://bucket/prefix/demo/tune?region=eu-west-1"),
    ("gs://bucket", "gs://bucket/demo/tune"),
    ("file:///data/ray", "file:///data/ray/demo/tune"),
    ("/data/ray", "/data/ray/demo/tune"),
])
def test_storage_children_keep_the_uri_scheme_and_query(root: str, joined: str) -> None:
    assert storage_child(root, "demo", "tune") == joined


def test_storage_path_is_validated_and_local_paths_made_absolute(tmp_path: Path) -> None:
    study = write_study(tmp_path / "s.yaml", "stored", budget={"epochs": 1},
                        ablation={"design": "one-factor", "factors": {"eca": ECA}})
    assert load_study(study, {"storage_path": "results"}).storage_path == \
        str(tmp_path / "results")
    assert load_study(study, {"storage_path": "s3://b/p"}).storage_path == "s3://b/p"
    with pytest.raises(UserError, match="the scheme must be one of"):
        load_study(study, {"storage_path": "ftp://host/p"})
    with pytest.raises(UserError, match="file:///like/this"):
        load_study(study, {"storage_path": "file://relative/p"})


def test_a_study_with_a_storage_uri_keeps_its_checkpoints_there(ray_session, study_cache,
                                                                tmp_path: Path) -> None:
    experiment, bucket = tmp_path / "experiment", tmp_path / "bucket"
    study = write_study(tmp_path / "s.yaml", "stored", budget={"epochs": 1},
                        storage_path=bucket.as_uri(),
                        ablation={"design": "one-factor", "factors": {"eca": ECA}})
    assert main(["search", str(study), "--out", str(experiment),
                 "--cache", str(study_cache)]) == 0
    rows = read_ledger(experiment)
    assert len(rows) == 4 and all(row.status == "finished" for row in rows)
    stored = bucket / "stored"
    assert all((stored / row.checkpoint / DESCRIPTION_FILE).is_file() for row in rows)
    assert {Path(row.checkpoint).parts[:2] for row in rows} == {("tune", "run-1")}
    assert not list(experiment.rglob("checkpoint_*")) and not (experiment / "tune").exists()
    assert (experiment / "report.md").is_file()
    assert json.loads((experiment / "study.json").read_text())["trial_storage"] == \
        f"{bucket.as_uri()}/stored"
    assert (experiment / BEST_MODEL).is_file()

    # The best model is read from the storage alone: without it the export says so.
    shutil.rmtree(stored)
    with pytest.raises(MissingCheckpoint, match="is not in file://"):
        export_best_model(experiment)


def test_the_exported_fold_is_the_best_by_the_objective() -> None:
    """The predictor comes from the fold the study's objective rates best: under a
    validation objective the test split chooses nothing, not even the fold."""
    from ser_ray.study.best import _best_unit
    from tests.experiment.builders import unit_row

    rows = [unit_row("trial", fold, 0, test, validation_percent=validation)
            for fold, test, validation in [(0, 80.0, 50.0), (1, 60.0, 70.0), (2, 70.0, 70.0)]]
    assert _best_unit(rows, "validation_unweighted_accuracy", maximise=True).fold == 1
    assert _best_unit(rows, "unweighted_accuracy", maximise=True).fold == 0
    assert _best_unit(rows, "unweighted_accuracy", maximise=False).fold == 1
