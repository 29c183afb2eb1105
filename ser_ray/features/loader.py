"""Select rows of a feature cache without Ray: ids, labels and their features, read from the
cache's memory-mapped arrays (`ser_ray.features.arrays`) only when indexed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ser_ray.errors import UserError
from ser_ray.features.arrays import RowFeatures, open_arrays
from ser_ray.features.cache import open_cache

# The order of a selection's rows within one STFT version.
ROW_ORDER = (("source_utterance_id", "ascending"), ("utterance_id", "ascending"),
             ("stft_version", "ascending"), ("segment_index", "ascending"))


@dataclass(frozen=True)
class FeatureSet:
    """Rows of one cache selection; `features[i]` are row i's features, of shape
    `features.feature_shape`, and `np.asarray(features)` all of them."""

    utterance_ids: np.ndarray
    source_utterance_ids: np.ndarray
    augmentations: np.ndarray
    stft_versions: np.ndarray
    segment_indices: np.ndarray
    labels: np.ndarray
    features: RowFeatures

    def __len__(self) -> int:
        return len(self.utterance_ids)


def load_features(
    cache_path: Path,
    *,
    stft_versions: Sequence[int] | None = None,
    augmentations: Sequence[str] | None = None,
    source_utterance_ids: Sequence[str] | None = None,
) -> FeatureSet:
    """Rows of the cache, optionally of some STFT versions, augmentations and sources.

    Rows come version by version in the order `stft_versions` names them (all versions
    together when None), each ordered by (source utterance, utterance, version, segment).
    `augmentations=["none"]` gives originals only; None gives every row.
    """
    feature_cache = open_cache(cache_path)
    metadata = feature_cache.metadata
    absent = [v for v in stft_versions or () if v not in metadata["variants"]]
    if absent:
        raise UserError(f"stft_version {absent[0]} is not in this cache; it holds "
                        f"{metadata['variants']}")
    arrays = open_arrays(feature_cache.path, metadata["feature_shape"])
    wanted = _row_filter(stft_versions, augmentations, source_utterance_ids)
    table = arrays.rows if wanted is None else arrays.rows.filter(wanted)
    order = list(ROW_ORDER)
    if stft_versions is not None:
        rank = pc.index_in(table.column("stft_version"), pa.array(list(stft_versions),
                                                                  pa.int32()))
        table = table.append_column("version_rank", rank)
        order.insert(0, ("version_rank", "ascending"))
    table = table.sort_by(order)

    def column(name: str) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False)

    return FeatureSet(
        utterance_ids=column("utterance_id"),
        source_utterance_ids=column("source_utterance_id"),
        augmentations=column("augmentation"),
        stft_versions=column("stft_version"),
        segment_indices=column("segment_index"),
        labels=column("label"),
        features=RowFeatures(arrays.slabs, column("slab"), column("slab_row"),
                             arrays.feature_shape),
    )


def _row_filter(stft_versions: Sequence[int] | None, augmentations: Sequence[str] | None,
                source_utterance_ids: Sequence[str] | None) -> pc.Expression | None:
    conditions = []
    if stft_versions is not None:
        conditions.append(pc.field("stft_version").isin(list(stft_versions)))
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
