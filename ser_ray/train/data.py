"""Fold data: the cache rows a job needs, loaded once, and per-fold train/test/validation rows.

Rows reach a fold only through the feature stage's guard (`training_rows`, `test_rows`), and
`assert_no_leakage` runs on every fold it builds: no row derived from a test (or validation)
utterance, whatever its augmentation or STFT version, is ever in a training split.

Labels come from the job's manifest, not from the cache, so one cache of a whole corpus
serves every class selection made from it (merges included). Utterances the feature stage
skipped (unusable audio) are absent from the cache; they are counted, never silently lost.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ser_ray.corpus.manifest import read_manifest
from ser_ray.errors import UserError
from ser_ray.features.arrays import RowFeatures
from ser_ray.features.cache import open_cache
from ser_ray.features.leakage import ORIGINAL, assert_no_leakage, test_rows, training_rows
from ser_ray.features.loader import load_features
from ser_ray.folds import FoldProtocol, LeakageError, read_folds
from ser_ray.train.config import TrainJob

STANDARDIZER_CHUNK_BYTES = 32 * 2**20


def standardizer_chunk_rows(feature_shape: tuple[int, ...]) -> int:
    """Rows the standardizer reads at once: about STANDARDIZER_CHUNK_BYTES as float64."""
    return max(1, STANDARDIZER_CHUNK_BYTES // (8 * int(np.prod(feature_shape))))


def feature_moments(features: RowFeatures, rows: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """Sum and sum of squares (float64) per first-axis index over `rows`, and the values
    summed per index. The rows are read from the shared arrays in chunks of about
    STANDARDIZER_CHUNK_BYTES into two buffers made once: the pass holds those two while it
    runs, and nothing once done, however many rows there are."""
    shape = features.feature_shape
    rows_per_chunk = min(standardizer_chunk_rows(shape), max(1, len(rows)))
    gathered = np.empty((rows_per_chunk, *shape), np.float32)
    widened = np.empty((rows_per_chunk, *shape), np.float64)
    summed_axes = (0, *range(2, len(shape) + 1))
    total = np.zeros(shape[0], np.float64)
    squares = np.zeros(shape[0], np.float64)
    for start in range(0, len(rows), rows_per_chunk):
        positions = rows[start:start + rows_per_chunk]
        chunk = widened[:len(positions)]
        np.copyto(chunk, features.gather(positions, out=gathered[:len(positions)]))
        total += chunk.sum(axis=summed_axes)
        squares += np.square(chunk, out=chunk).sum(axis=summed_axes)
    return total, squares, len(rows) * int(np.prod(shape[1:]))


@dataclass(frozen=True)
class Split:
    """Rows of one split as indices into the shared feature array.

    `groups[i]` numbers the utterance row i belongs to (0..n_utterances-1): several rows of
    one utterance (MFCC segments) are scored together by averaging their logits.
    """

    rows: np.ndarray
    targets: np.ndarray
    groups: np.ndarray
    utterance_ids: np.ndarray

    @property
    def n_utterances(self) -> int:
        return len(self.utterance_ids)

    def utterance_targets(self) -> np.ndarray:
        first_row = np.unique(self.groups, return_index=True)[1]
        return self.targets[first_row]


@dataclass(frozen=True)
class FoldSplits:
    fold_index: int
    train: Split
    test: Split
    validation: Split | None


@dataclass(frozen=True)
class Standardizer:
    """z-score per index of the first feature axis, fitted on training rows."""

    mean: np.ndarray
    std: np.ndarray

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return (batch - self.mean) / self.std

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.ravel().tolist(), "std": self.std.ravel().tolist()}

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None,
                  feature_shape: tuple[int, ...]) -> Standardizer:
        """Saved statistics, or the identity (mean 0, std 1) when none were saved."""
        shape = (feature_shape[0], *([1] * (len(feature_shape) - 1)))
        if values is None:
            return cls(np.zeros(shape, np.float32), np.ones(shape, np.float32))
        return cls(np.asarray(values["mean"], np.float32).reshape(shape),
                   np.asarray(values["std"], np.float32).reshape(shape))


class FoldData:
    """All rows a job can use, with the fold table, the manifest labels and the label map."""

    def __init__(self, job: TrainJob) -> None:
        self.config = job.train
        manifest = read_manifest(job.manifest)
        fold_table, self.protocol = read_folds(job.folds)
        self.cache = open_cache(job.cache)
        self.recipe = self.cache.metadata["recipe"]
        self.feature_shape = tuple(self.cache.metadata["feature_shape"])
        _refuse_duplicates(manifest, fold_table, self.protocol, job)
        labels = manifest.set_index("utterance_id")
        utterance_ids = pd.Index(fold_table["utterance_id"].unique())
        unlabelled = utterance_ids.difference(labels.index)
        if len(unlabelled):
            raise UserError(f"{len(unlabelled)} utterances of the fold table are not in "
                            f"the manifest {job.manifest} (e.g. {unlabelled[0]}); make the "
                            f"folds from this manifest")
        self.utterances = labels.loc[utterance_ids, ["label", "speaker"]]
        # A repeated k-fold table names each utterance once per repeat.
        self.fold_members: dict[int, pd.Index] = {
            int(fold): pd.Index(group["utterance_id"])
            for fold, group in fold_table.groupby("fold", sort=True)}
        self.label_names: tuple[str, ...] = tuple(sorted(self.utterances["label"].unique()))
        self.fold_indices: tuple[int, ...] = tuple(self.fold_members)
        # The folds this job trains: those it names, else every fold of the table.
        self.job_folds: tuple[int, ...] = job.fold_indices or self.fold_indices
        self.test_version, self.train_versions = self._versions()
        self.augmentations = self._augmentations()

    @functools.cached_property
    def _loaded(self) -> tuple[pd.DataFrame, RowFeatures]:
        return self._load_rows()

    @property
    def rows(self) -> pd.DataFrame:
        """One row per feature row of the cache this job uses (loaded on first use)."""
        return self._loaded[0]

    @property
    def features(self) -> RowFeatures:
        """Every row's features, read from the cache's read-only shared arrays by index."""
        return self._loaded[1]

    @property
    def missing_utterances(self) -> list[str]:
        """Utterances of the fold table the feature stage skipped (unusable audio)."""
        return sorted(set(self.utterances.index) - set(self.rows["source_utterance_id"]))

    def _versions(self) -> tuple[int | None, tuple[int, ...] | None]:
        variants = [v for v in self.cache.metadata["variants"] if v is not None]
        test_version = self.config.test_version
        if test_version is None and variants:
            if len(variants) > 1:
                raise UserError(f"the cache holds STFT versions {variants}; set test_version "
                                f"(and train_versions for STFT augmentation)")
            test_version = variants[0]
        if test_version is not None and not variants:
            raise UserError(f"test_version={test_version} but the cache's recipe "
                            f"{self.recipe['kind']!r} has no STFT versions")
        train_versions = self.config.train_versions or (
            (test_version,) if test_version is not None else None)
        for version in (test_version, *(train_versions or ())):
            if version is not None and version not in variants:
                raise UserError(f"STFT version {version} is not in the cache; it holds "
                                f"{variants}")
        return test_version, train_versions

    def _load_rows(self) -> tuple[pd.DataFrame, RowFeatures]:
        """The job's rows, version by version; their features stay in the cache's shared
        arrays until a batch reads them."""
        versions = sorted({self.test_version, *(self.train_versions or ())}, key=str) \
            if self.test_version is not None else None
        loaded = load_features(self.cache.path, stft_versions=versions,
                               augmentations=self.augmentations,
                               source_utterance_ids=list(self.utterances.index))
        rows = pd.DataFrame({
            "utterance_id": loaded.utterance_ids.astype(str),
            "source_utterance_id": loaded.source_utterance_ids.astype(str),
            "augmentation": loaded.augmentations.astype(str),
            "stft_version": pd.array(loaded.stft_versions, dtype="Int64"),
        })
        label_index = {name: index for index, name in enumerate(self.label_names)}
        rows["target"] = rows["source_utterance_id"].map(self.utterances["label"]) \
            .map(label_index).astype(np.int64)
        return rows, loaded.features

    def _augmentations(self) -> list[str] | None:
        wanted = self.config.augmentations
        if wanted == "all":
            return None
        available = self.cache.metadata["augmentations"]
        absent = [name for name in wanted if name not in available]
        if absent:
            raise UserError(f"augmentations {absent} are not in the feature cache; it holds "
                            f"{available or 'originals only'}")
        return [ORIGINAL, *wanted]

    def held_out(self, fold_index: int) -> tuple[pd.Index, pd.Index]:
        """(test, validation) utterance ids of a fold, checked without loading features.

        'train-speakers' holds out whole speakers of the training fold (`validation_speakers`).
        Under 'test-fold-speaker' the validation speaker alternates with the fold index, so
        that (in IEMOCAP) the female and the male actors are each tested in half the folds.
        """
        if fold_index not in self.fold_members:
            raise UserError(f"fold {fold_index} is not in the fold table; folds: "
                            f"{list(self.fold_indices)}")
        held_out = self.utterances.loc[self.fold_members[fold_index]]
        if self.config.validation == "train-speakers":
            return held_out.index, self.validation_speakers(fold_index)
        validation_ids: pd.Index = pd.Index([])
        if self.config.validation == "test-fold-speaker":
            speakers = sorted(held_out["speaker"].unique())
            if len(speakers) < 2:
                raise UserError(f"validation 'test-fold-speaker' needs two speakers in each "
                                f"test fold; fold {fold_index} has {speakers}")
            validation_speaker = speakers[fold_index % len(speakers)]
            validation_ids = held_out.index[held_out["speaker"] == validation_speaker]
        return held_out.index.difference(validation_ids), validation_ids

    def validation_speakers(self, fold_index: int) -> pd.Index:
        """Utterances of whole training-fold speakers drawn (by `validation_seed` and the
        fold) until they hold `validation_fraction` of the training fold: a validation split
        that shares no speaker with the rows that train."""
        training = self.utterances.drop(self.fold_members[fold_index])
        speakers = np.asarray(sorted(training["speaker"].unique()))
        if len(speakers) < 2:
            raise UserError(f"validation 'train-speakers' needs two speakers in the training "
                            f"data of fold {fold_index}; it has {list(speakers)}")
        rng = np.random.default_rng([self.config.validation_seed, fold_index])
        drawn = rng.permutation(speakers)
        held = np.cumsum(training.groupby("speaker").size().loc[drawn].to_numpy())
        wanted = self.config.validation_fraction * len(training)
        count = min(int(np.searchsorted(held, wanted)) + 1, len(speakers) - 1)
        return training.index[training["speaker"].isin(drawn[:count])]

    def splits(self, fold_index: int) -> FoldSplits:
        test_ids, validation_ids = self.held_out(fold_index)
        held_out = test_ids.union(validation_ids)
        train_ids = self.utterances.index.difference(held_out)
        # Under a speaker-dependent protocol the test fold shares speakers with training anyway.
        _check_validation_speakers(self.utterances, validation_ids, fold_index, train=train_ids,
                                   test=test_ids if self.protocol.speaker_independent else None)
        train = training_rows(self.rows, train_ids, train_versions=self.train_versions)
        test = test_rows(self.rows, test_ids, stft_version=self.test_version)
        validation = test_rows(self.rows, validation_ids, stft_version=self.test_version) \
            if len(validation_ids) else None
        assert_no_leakage(train, list(held_out), test_rows=test)
        return FoldSplits(
            fold_index=fold_index,
            train=_split(train),
            test=_split(test),
            validation=_split(validation) if validation is not None else None,
        )

    def standardizer(self, train: Split) -> Standardizer:
        """Mean/std per first-axis index over the training rows (`feature_moments`)."""
        total, squares, count = feature_moments(self.features, train.rows)
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
        shape = (self.feature_shape[0], *([1] * (len(self.feature_shape) - 1)))
        return Standardizer(mean.astype(np.float32).reshape(shape),
                            np.where(std > 1e-8, std, 1.0).astype(np.float32).reshape(shape))


def _refuse_duplicates(manifest: pd.DataFrame, fold_table: pd.DataFrame,
                       protocol: FoldProtocol, job: TrainJob) -> None:
    """An utterance twice in the manifest, or twice in one repeat of the fold table, would be
    trained or scored twice (and could sit in a training and a test split at once)."""
    twice = manifest["utterance_id"][manifest["utterance_id"].duplicated()]
    if len(twice):
        raise UserError(f"{twice.nunique()} utterance ids appear twice in the manifest "
                        f"{job.manifest} (e.g. {twice.iloc[0]})")
    repeat = fold_table["fold"].map(protocol.repeat_of)
    twice = fold_table["utterance_id"][fold_table.assign(repeat=repeat).duplicated(
        ["utterance_id", "repeat"])]
    if len(twice):
        raise UserError(f"{twice.nunique()} utterance ids appear twice in one repeat of the "
                        f"fold table {job.folds} (e.g. {twice.iloc[0]}); make the folds again")


def _check_validation_speakers(utterances: pd.DataFrame, validation_ids: pd.Index,
                               fold_index: int, **others: pd.Index | None) -> None:
    """A validation speaker heard in training (or, speaker-independently, in the test fold)
    would flatter every choice made on it."""
    speakers = set(utterances.loc[validation_ids, "speaker"])
    for split, ids in others.items():
        shared = speakers & set(utterances.loc[ids, "speaker"]) if ids is not None else set()
        if shared:
            raise LeakageError(f"fold {fold_index}: validation speakers {sorted(shared)} are "
                               f"also in the {split} split; the validation split must hold "
                               f"out whole speakers", {str(s): [fold_index] for s in shared})


def _split(rows: pd.DataFrame) -> Split:
    sources = rows["source_utterance_id"].to_numpy()
    utterance_ids, groups = np.unique(sources, return_inverse=True)
    return Split(rows=rows.index.to_numpy(), targets=rows["target"].to_numpy(np.int64, copy=True),
                 groups=groups.astype(np.int64), utterance_ids=utterance_ids)
