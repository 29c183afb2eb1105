"""cnn1d_csa's input (spec §3.2): [ZCR per frame ; MFCC (20) flattened frame-major],
right-padded with zeros to L = 21 · 108 = 2268; either block alone for the ZCR-only and
MFCC-only inputs.

>>> waves = [np.ones(22050, np.float32), np.ones(80000, np.float32)]
>>> zcr_mfcc_vectors(ZcrMfccVectorRecipe(), waves).shape
(2, 2268)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from ser_ray.features.recipe import FeatureItem
from ser_ray.features.utterance_vector import UtteranceVectorRecipe, batched_descriptors

VectorComponents = Literal["zcr+mfcc", "zcr", "mfcc"]


class ZcrMfccVectorRecipe(UtteranceVectorRecipe):
    """cnn1d_csa (spec §3.2): [ZCR ; MFCC frame-major], zero right-padded to L = 2268.

    The notebooks' other inputs (spec §3.2 item 6) are component choices of the same vector:
    `components="zcr"` is the EMO-DB "without MFCC" input, L = 108 (preset
    `cnn1d_csa-emodb-zcr`), and `components="mfcc"` the TESS input, L = 20 × 103 = 2060
    (preset `cnn1d_csa-tess`). The notebooks right-pad to their longest row, and TESS's rows
    have 103 frames where EMO-DB's have 108; the frame count here is 1 + duration_samples //
    hop_length, so `duration_s=2.39` (any value from 2.369 to 2.391 s at 22,050 Hz, hop 512)
    fixes it at 103 for every corpus.
    """

    kind: Literal["zcr_mfcc_vector"] = "zcr_mfcc_vector"
    components: VectorComponents = Field(
        "zcr+mfcc", description="blocks of the vector, in this order: ZCR + MFCC "
        "(EMO-DB/EMOVO), ZCR only (EMO-DB without MFCC) or MFCC only (TESS) [code]")
    align_components: bool = Field(
        False, description="pad each block to the full frame count, so columns align across "
        "utterances; False = the notebooks' single right-pad [code]")

    @property
    def component_names(self) -> list[str]:
        return self.components.split("+")

    def component_width(self, name: str) -> int:
        """Columns one frame adds to a component's block: 1 for ZCR, n_mfcc for MFCC."""
        return self.n_mfcc if name == "mfcc" else 1

    @property
    def vector_length(self) -> int:
        return self.n_frames * sum(map(self.component_width, self.component_names))

    def feature_shape(self) -> tuple[int, ...]:
        return (self.vector_length,)

    def _featurize(self, waveforms: list[np.ndarray], device: str) -> list[list[FeatureItem]]:
        return [[FeatureItem(None, None, vector)]
                for vector in zcr_mfcc_vectors(self, waveforms, device)]


@torch.inference_mode()
def zcr_mfcc_vectors(recipe: ZcrMfccVectorRecipe, waveforms: list[np.ndarray],
                     device: str = "cpu") -> np.ndarray:
    """cnn1d_csa vectors (spec §3.2): (B, recipe.vector_length) float32.

    Faithful layout: the chosen blocks back to back, [ZCR (T_i) ; MFCC frame-major
    (n_mfcc · T_i)] by default, then zeros, so a short crop's MFCC block starts earlier.
    `align_components` pads each block to the full frame count first, so every position means
    the same thing in every row.
    """
    rows: list[np.ndarray] = []
    for descriptors in batched_descriptors(recipe, waveforms, device):
        # Every block as (B, T, columns per frame), flattened frame-major below.
        blocks = {"zcr": descriptors.zcr[:, :, None].cpu().numpy(),
                  "mfcc": descriptors.mfcc.cpu().numpy()}
        for row, count in enumerate(descriptors.frame_counts):
            vector = np.zeros(recipe.vector_length, np.float32)
            block_frames = recipe.n_frames if recipe.align_components else count
            start = 0
            for name in recipe.component_names:
                block = blocks[name][row, :count].ravel()
                vector[start:start + block.size] = block
                start += block_frames * recipe.component_width(name)
            rows.append(vector)
    return np.stack(rows)
