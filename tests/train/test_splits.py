"""Fold splits beyond the plain fold table: the validation speakers held out of each training
fold, repeated k-fold tables, and the objective a trial reports under its selection rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_ray.corpus import read_manifest
from ser_ray.errors import UserError
from ser_ray.experiment import TrainConfig
from ser_ray.folds import FoldProtocol, check_folds, make_folds, write_folds
from ser_ray.train import TrainJob
from ser_ray.train.data import FoldData
from ser_ray.train.loop import LockstepRun
from ser_ray.train.results import epoch_summary, run_summary
from tests.train.test_loop import TINY_ECA_CNN


def job(tiny_study, folds: Path | None = None, **train) -> TrainJob:
    return TrainJob(manifest=tiny_study.selected_manifest, folds=folds or tiny_study.folds,
                    cache=tiny_study.cache, model=TINY_ECA_CNN,
                    train=TrainConfig(**{"epochs": 2, "test_version": 8, **train}))


def speakers(data: FoldData, ids) -> set[str]:
    return set(data.utterances.loc[ids, "speaker"])


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.6])
def test_validation_speakers_are_whole_training_speakers(tiny_study, fraction: float) -> None:
    """'train-speakers': the validation split shares no speaker with the test fold or the
    rows that train (augmented copies and other STFT versions included), holds at least the
    asked share of the training fold, and is the same draw for the same seed."""
    data = FoldData(job(tiny_study, validation="train-speakers", validation_fraction=fraction,
                        train_versions=(2, 8), augmentations="all"))
    for fold in data.fold_indices:
        test_ids, validation_ids = data.held_out(fold)
        training = data.utterances.index.difference(test_ids)
        assert len(validation_ids) >= fraction * len(training)
        assert speakers(data, validation_ids).isdisjoint(speakers(data, test_ids))
        splits = data.splits(fold)
        trained = set(data.rows.loc[splits.train.rows, "source_utterance_id"])
        assert speakers(data, list(trained)).isdisjoint(speakers(data, validation_ids))
        assert set(splits.validation.utterance_ids) == set(validation_ids)
        assert set(data.rows.loc[splits.train.rows, "augmentation"]) != {"original"}
        again = FoldData(job(tiny_study, validation="train-speakers",
                             validation_fraction=fraction)).held_out(fold)[1]
        assert list(again) == list(validation_ids)


def test_validation_seeds_draw_different_speakers(tiny_study) -> None:
    draws = {tuple(sorted(speakers(data, data.held_out(fold)[1])))
             for seed in range(6)
             for data in [FoldData(job(tiny_study, validation="train-speakers",
                                       validation_seed=seed))]
             for fold in data.fold_indices[:1]}
    assert len(draws) > 1


def test_a_repeated_fold_table_trains_each_split_on_everything_else(tiny_study,
                                                                    tmp_path: Path) -> None:
    manifest = read_manifest(tiny_study.selected_manifest)
    protocol = FoldProtocol("stratified", k=2, seed=0, repeats=2)
    folds = make_folds(manifest, protocol)
    path = tmp_path / "folds.parquet"
    write_folds(folds, protocol, check_folds(manifest, folds, protocol), path)
    data = FoldData(job(tiny_study, folds=path))
    assert data.fold_indices == (0, 1, 2, 3)
    everything = set(manifest["utterance_id"])
    for fold in data.fold_indices:
        splits = data.splits(fold)
        tested = set(splits.test.utterance_ids)
        assert tested == set(folds.loc[folds["fold"] == fold, "utterance_id"])
        assert set(data.rows.loc[splits.train.rows, "source_utterance_id"]) == everything - tested


def test_a_trial_reports_the_number_its_configuration_is_ranked_by(tiny_study) -> None:
    """Under 'best-test' the value a scheduler and searcher see after each epoch is the
    fold mean at each fold's best epoch so far; after the last epoch it equals the fold mean
    the ledger and the report rank by (`run_summary`)."""
    run = LockstepRun(job(tiny_study, epochs=4, selection="best-test", lr=3e-3,
                          standardize="train-fold"))
    reported: list[float] = []
    run.train(lambda records, _: reported.append(
        epoch_summary(records, run.selected_so_far())["selected_unweighted_accuracy"]))
    histories = {trainer.fold_index: trainer.history for trainer in run.trainers}
    ranked = run_summary(histories, "best-test", run.data.label_names)["fold_mean"]
    assert reported[-1] == pytest.approx(ranked["unweighted_accuracy"])
    for epoch, value in enumerate(reported, start=1):
        best_so_far = [max(history[:epoch], key=lambda r: r["test"]["ua_wa_mean"])
                       for history in histories.values()]
        assert value == pytest.approx(np.mean([r["test"]["unweighted_accuracy"]
                                               for r in best_so_far]))


def test_validation_speakers_never_take_every_training_speaker(tiny_study) -> None:
    """However large the fraction, one training speaker is left to train."""
    data = FoldData(job(tiny_study, validation="train-speakers", validation_fraction=0.95))
    for fold in data.fold_indices:
        test_ids, validation_ids = data.held_out(fold)
        training = data.utterances.index.difference(test_ids)
        assert len(speakers(data, training.difference(validation_ids))) == 1


def test_an_utterance_twice_in_the_manifest_is_refused(tiny_study, tmp_path: Path) -> None:
    manifest = read_manifest(tiny_study.selected_manifest)
    doubled = tmp_path / "manifest.parquet"
    pd.concat([manifest, manifest.iloc[:1]]).to_parquet(doubled)
    with pytest.raises(UserError, match="1 utterance ids appear twice in the manifest"):
        FoldData(job(tiny_study).model_copy(update={"manifest": doubled}))
