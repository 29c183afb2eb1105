"""eca_cnn_bilstm's input (spec §4.2 [DEFAULT]): time-means of ZCR (1), RMS (1), MFCC (20) and
Mel power (128) → 150 per utterance.

>>> waves = [np.ones(22050, np.float32), np.ones(80000, np.float32)]
>>> spectral_stats_vectors(SpectralStatsRecipe(), waves).shape
(2, 150)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ser_ray.features.recipe import FeatureItem
from ser_ray.features.utterance_vector import UtteranceVectorRecipe, batched_descriptors


class SpectralStatsRecipe(UtteranceVectorRecipe):
    """eca_cnn_bilstm (spec §4.2 [DEFAULT]): time-means of ZCR, RMS, MFCC, Mel power → 150."""

    kind: Literal["spectral_stats"] = "spectral_stats"

    def feature_shape(self) -> tuple[int, ...]:
        return (2 + self.n_mfcc + self.n_mels,)

    def _featurize(self, waveforms: list[np.ndarray], device: str) -> list[list[FeatureItem]]:
        return [[FeatureItem(None, None, vector)]
                for vector in spectral_stats_vectors(self, waveforms, device)]


@torch.inference_mode()
def spectral_stats_vectors(recipe: SpectralStatsRecipe, waveforms: list[np.ndarray],
                           device: str = "cpu") -> np.ndarray:
    """eca_cnn_bilstm vectors (spec §4.2): time-means [ZCR, RMS, MFCC, Mel power], (B, 150)."""
    chunks: list[np.ndarray] = []
    for descriptors in batched_descriptors(recipe, waveforms, device):
        counts = torch.from_numpy(descriptors.frame_counts).to(descriptors.zcr)
        means = [descriptors.zcr.sum(-1, keepdim=True), descriptors.rms.sum(-1, keepdim=True),
                 descriptors.mfcc.sum(1), descriptors.mel_power.sum(1)]
        chunks.append((torch.cat(means, dim=1) / counts[:, None]).cpu().numpy())
    return np.concatenate(chunks)
