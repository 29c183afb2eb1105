"""Read a feature cache into numpy without Ray: ids, labels and a features array."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from ser_ray.errors import UserError
from ser_ray.features.cache import open_cache


@dataclass(frozen=True)
class FeatureSet:
    """Rows of one cache selection; `features` has shape (rows, *feature_shape)."""

    utterance_ids: np.ndarray
    source_utterance_ids: np.ndarray
    augmentations: np.ndarray
    stft_versions: np.ndarray
    segment_indices: np.ndarray
    labels: np.ndarray
    features: np.ndarray

    def __len__(self) -> int:
        return len(self.utterance_ids)


def load_features(
    cache_path: Path,
    *,
    stft_version: int | None = None,
    augmentations: Sequence[str] | None = None,
    source_utterance_ids: Sequence[str] | None = None,
) -> FeatureSet:
    """Rows of the cache, optionally of one STFT version, some augmentations, some sources.

    `augmentations=["none"]` gives originals only; None gives every row.
    """
    feature_cache = open_cache(cache_path)
    metadata = feature_cache.metadata
    if stft_version is not None and stft_version not in metadata["variants"]:
        raise UserError(f"stft_version {stft_version} is not in this cache; it holds "
                        f"{metadata['variants']}")
    dataset = pads.dataset(feature_cache.data_dir, format="parquet")
    table = dataset.to_table(filter=_row_filter(stft_version, augmentations,
                                                source_utterance_ids))
    table = table.sort_by([("source_utterance_id", "ascending"), ("utterance_id", "ascending"),
                           ("stft_version", "ascending"), ("segment_index", "ascending")])
    shape = tuple(metadata["feature_shape"])
    flat = pa.concat_arrays(table.column("features").chunks) if table.num_rows else None
    features = (flat.flatten().to_numpy(zero_copy_only=False).reshape(-1, *shape)
                if flat is not None else np.empty((0, *shape), np.float32))
    return FeatureSet(
        utterance_ids=table.column("utterance_id").to_numpy(zero_copy_only=False),
        source_utterance_ids=table.column("source_utterance_id").to_numpy(zero_copy_only=False),
        augmentations=table.column("augmentation").to_numpy(zero_copy_only=False),
        stft_versions=table.column("stft_version").to_numpy(zero_copy_only=False),
        segment_indices=table.column("segment_index").to_numpy(zero_copy_only=False),
        labels=table.column("label").to_numpy(zero_copy_only=False),
        features=features.astype(np.float32, copy=False),
    )


def _row_filter(stft_version: int | None, augmentations: Sequence[str] | None,
                source_utterance_ids: Sequence[str] | None) -> pc.Expression | None:
    conditions = []
    if stft_version is not None:
        conditions.append(pc.field("stft_version") == stft_version)
    if augmentations is not None:
        conditions.append(pc.field("augmentation").isin(list(augmentations)))
    if source_utterance_ids is not None:
        conditions.append(pc.field("source_utterance_id").isin(list(source_utterance_ids)))
    if not conditions:
        return None
    combined = conditions[0]
    for condition in conditions[1:]:
        combined = combined & condition
    return combined
