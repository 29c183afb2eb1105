"""Label new recordings with a trained model, and export it for serving.

A predictor file (`model/predictor.pt` from `ser-ray train`, or `best_model/predictor.pt` of
a study) holds the weights with everything prediction needs: the feature recipe, the STFT
version the model was scored at, the training fold's standardisation and the label map. Any
WAV file is read as the training data was — downmixed, resampled, featurized by the same
recipe code — and a recipe that cuts an utterance into segments is scored by the mean of the
segments' logits, as in evaluation.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ser_ray import models
from ser_ray.corpus.scan import DEFAULT_MIN_DURATION_S, too_short_reason
from ser_ray.errors import UserError
from ser_ray.features.audio import BadAudio, load_waveform
from ser_ray.features.recipes import parse_recipe
from ser_ray.train.data import Standardizer


@dataclass(frozen=True)
class Prediction:
    path: str
    probabilities: dict[str, float] | None
    error: str | None = None

    @property
    def label(self) -> str | None:
        if self.probabilities is None:
            return None
        return max(self.probabilities, key=self.probabilities.__getitem__)


class ScoringModule(nn.Module):
    """Features (B, *feature_shape) → class log-probabilities: standardise, shape, model."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...],
                 mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.input_shape = input_shape
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        standardized = (features - self.mean) / self.std
        logits = self.model(standardized.reshape((features.shape[0],) + self.input_shape))
        return torch.log_softmax(logits, dim=-1)


class Predictor:
    def __init__(self, path: Path) -> None:
        if not Path(path).is_file():
            raise UserError(f"checkpoint {path} does not exist (ser-ray train writes "
                            f"OUT/model/predictor.pt)")
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001  (any unreadable file is the user's to fix)
            raise UserError(f"{path} is not a ser-ray predictor: {error}") from error
        if not isinstance(saved, dict) or "state_dict" not in saved:
            raise UserError(f"{path} is not a ser-ray predictor (no weights and recipe)")
        self.saved = saved
        self.label_names: list[str] = list(saved["label_names"])
        self.feature_shape = tuple(saved["feature_shape"])
        self.stft_version: int | None = saved["stft_version"]
        recipe = dict(saved["recipe"])
        if self.stft_version is not None:
            recipe["versions"] = [self.stft_version]
        self.recipe = parse_recipe(recipe)
        model = models.build(saved["model"], len(self.label_names), **saved["model_options"])
        model.load_state_dict(saved["state_dict"])
        model.eval()
        standardizer = Standardizer.from_dict(saved["standardizer"], self.feature_shape)
        self.scorer = ScoringModule(
            model, models.input_shape(saved["model"], **saved["model_options"]),
            torch.from_numpy(standardizer.mean), torch.from_numpy(standardizer.std))

    @torch.no_grad()
    def probabilities(self, waveform: np.ndarray) -> dict[str, float]:
        """Class probabilities of one mono waveform at the recipe's sample rate."""
        (items,) = self.recipe.featurize_batch([waveform])
        rows = np.stack([item.features for item in items
                         if item.stft_version == self.stft_version])
        log_probabilities = self.scorer(torch.from_numpy(rows.astype(np.float32)))
        # Segments are scored by their mean logits; the mean of their log-probabilities differs
        # from that only by a per-utterance constant, which the softmax removes.
        mean = log_probabilities.mean(dim=0)
        return dict(zip(self.label_names, torch.softmax(mean, dim=0).tolist()))

    def predict(self, path: Path) -> Prediction:
        try:
            waveform = load_waveform(path, self.recipe.sample_rate)
        except BadAudio as bad:
            return Prediction(str(path), None, f"{bad.reason} ({bad.reason_code})")
        duration_s = len(waveform) / self.recipe.sample_rate
        if duration_s < DEFAULT_MIN_DURATION_S:
            return Prediction(str(path), None, "too short to label: "
                              + too_short_reason(duration_s, DEFAULT_MIN_DURATION_S))
        return Prediction(str(path), self.probabilities(waveform))

    def export(self, out: Path) -> Path:
        """The scorer (features → log-probabilities, any batch size) as an ONNX model (`.onnx`)
        or a `torch.export` program (`.pt2`, load with `torch.export.load(path).module()`),
        with a JSON sidecar of the recipe and labels that turn a recording into its input."""
        if out.suffix not in EXPORT_FORMATS:
            raise UserError(f"--out {out}: the file name says the format; use one of "
                            f"{', '.join(EXPORT_FORMATS)} ({_format_list()})")
        if out.suffix == ".onnx":
            _require_onnx()
        example = torch.zeros((2, *self.feature_shape))
        program = torch.export.export(
            self.scorer, (example,),
            dynamic_shapes={"features": {0: torch.export.Dim("batch", min=1)}})
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".onnx":
            _save_onnx(program, out)
        else:
            torch.export.save(program, out)
        shape = ", ".join(map(str, self.feature_shape))
        out.with_suffix(".json").write_text(json.dumps({
            "format": EXPORT_FORMATS[out.suffix],
            "input": f"float32 features of shape (batch, {shape})",
            "output": "class log-probabilities (batch, classes); exp() gives probabilities",
            "label_names": self.label_names, "recipe": self.recipe.model_dump(mode="json"),
            "stft_version": self.stft_version, "model": self.saved["model"],
            "model_options": self.saved["model_options"]}, indent=2))
        return out


EXPORT_FORMATS = {".onnx": "ONNX (opset 18)", ".pt2": "torch.export program"}


def _format_list() -> str:
    return "; ".join(f"{suffix} = {name}" for suffix, name in EXPORT_FORMATS.items())


def _require_onnx() -> None:
    """torch's dynamo exporter needs the optional `onnx` and `onnxscript` packages (the
    `export` extra)."""
    for package in ("onnx", "onnxscript"):
        if importlib.util.find_spec(package) is None:
            raise UserError(f"ONNX export needs the '{package}' package: pip install "
                            f"'ser-ray[export]' (or export to .pt2)")


def _save_onnx(program: torch.export.ExportedProgram, out: Path) -> None:
    # The exporter lists every torchvision operator it cannot register, one warning each.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    torch.onnx.export(program, opset_version=18, verbose=False).save(str(out))


def format_predictions(predictions: list[Prediction], label_names: list[str]) -> str:
    from tabulate import tabulate

    rows = [[p.path, p.label or "—",
             *([f"{p.probabilities[name]:.3f}" for name in label_names] if p.probabilities
               else ["—"] * len(label_names)),
             p.error or ""] for p in predictions]
    return tabulate(rows, headers=["file", "emotion", *label_names, "problem"])
