"""One configuration of a study, resolved and validated once, and the data it is trained on.

A `Configuration` is a variant of an ablation or a trial of a search with everything it
trains by spelled out: the model family with every option (a preset expanded, defaults
filled in, sized to its feature set), the feature set, and the effective training settings.
The study resolves it once (`ser_ray.study.design.resolve`); it then travels through Tune to
the worker that trains it and is stored whole in every ledger row of its units.

Its hash (`config_hash`) covers the configuration and the data it is trained on (the
utterances, the folds and its feature set's recipe): the same configuration on the same data
in another or an extended study is the same unit, and keeps its recorded results.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ser_ray.experiment.training import TrainConfig
from ser_ray.schema import StrictModel

# Optuna's categorical choices are scalars: a list choice (e.g. ECA blocks [5, 6]) travels
# through Optuna, and is recorded in its distributions, as this prefix and its JSON.
JSON_CHOICE_PREFIX = "json:"


class Configuration(StrictModel):
    """What one variant or trial trains, seeds and folds aside.

    Attributes:
        changes: the dotted overrides over the study's base configuration that make it.
        model: the model or preset name as the study names it.
        family: the registered model it builds.
        model_options: every option of `family`, sized to the feature set and validated.
        feature_set: the study's feature set it reads.
        train: the effective training settings (the family's paper training, then the
            study's `train`, then the overrides).
    """

    changes: dict[str, Any]
    model: str
    family: str
    model_options: dict[str, Any]
    feature_set: str
    train: TrainConfig

    def identity(self) -> dict[str, Any]:
        """What makes two configurations the same: two spellings of one model are one."""
        return {"model": [self.family, self.model_options],
                "train": self.train.model_dump(mode="json")}


class FeatureIdentity(StrictModel):
    """A feature set by what its numbers depend on, not where they are cached."""

    recipe: dict[str, Any]
    augmentations: tuple[str, ...]
    seed: int
    feature_code_version: int


class DataIdentity(StrictModel):
    """The content a study trains on: its utterances and labels, its folds, its features."""

    manifest: str
    folds: str
    features: dict[str, FeatureIdentity]


def config_hash(configuration: Configuration, data: DataIdentity) -> str:
    """Content hash of a configuration on given data: the unit key's first part."""
    payload = json.dumps({**configuration.identity(), "data": {
        "manifest": data.manifest, "folds": data.folds,
        "features": data.features[configuration.feature_set].model_dump(mode="json")}},
        sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def encode_choice(value: Any) -> Any:
    """A categorical choice as Optuna holds it: scalars as they are, anything else as JSON.

    >>> encode_choice(3), encode_choice([5, 6]), encode_choice(None)
    (3, 'json:[5, 6]', None)
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return JSON_CHOICE_PREFIX + json.dumps(value, sort_keys=True)


def decode_choice(value: Any) -> Any:
    """The value `encode_choice` encoded.

    >>> decode_choice("json:[5, 6]"), decode_choice("plain text"), decode_choice(0.5)
    ([5, 6], 'plain text', 0.5)
    """
    if isinstance(value, str) and value.startswith(JSON_CHOICE_PREFIX):
        return json.loads(value.removeprefix(JSON_CHOICE_PREFIX))
    return value
