"""Tiny study YAMLs on the synthetic corpus, shared by the study tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TINY_CORPUS = {"reader": "iemocap",
               "synthetic": {"sessions": 2, "speakers_per_session": 2,
                             "utterances_per_speaker": 8}}
STUDY: dict[str, Any] = {
    "corpus": TINY_CORPUS,
    "selection": {"labels": ["angry", "happy", "neutral", "sad"], "merge": {"excited": "happy"}},
    "protocol": {"kind": "session"},
    "features": {"logmel": {"recipe": {"kind": "logmel", "versions": [2, 8],
                                       "duration_s": 2.0}}},
    "feature_set": "logmel",
    "model": {"name": "eca_cnn", "options": {"scale": 1, "base_width": 4}},
    # Plain CE: once a search holds a validation speaker out of these tiny training folds (8
    # utterances a speaker), a class can be missing, and the focal loss's class weights need
    # every class.
    "train": {"test_version": 8, "batch_size": 8, "lr": 0.003, "loss": {"kind": "ce"}},
}
ECA = {"levels": {"off": {}, "on": {"model.options.eca_blocks": [5, 6]}}}
VERSION = {"levels": {"v8": {"train.test_version": 8}, "v2": {"train.test_version": 2}}}


def write_study(path: Path, name: str, **fields: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"name": name, **STUDY, **fields}, sort_keys=False))
    return path
