"""ECA-CNN-BiLSTM — Kundu, Kobir, Ahmed, Aktar, Roy, "Enhanced Speech Emotion Recognition with
Efficient Channel Attention Guided Deep CNN-BiLSTM Framework", arXiv 2412.10011 (spec §4).
Input (B, 150, 1) per-utterance feature vector, output (B, num_classes) logits.

Only the abstract and third-party summaries are public and there is no code, so this is an
approximate reimplementation: every size below is a spec default ([DEFAULT], spec §4.2).
Local channel: attention-based local feature blocks (ALFB: Conv1D → ReLU → ECA → BN →
max-pool) over the feature axis, then global average pooling. Global channel: a BiLSTM,
over the input sequence ("parallel") or over the ALFB output ("serial"). The two vectors are
concatenated → Dense → ReLU → Dropout → Dense.

>>> model = EcaCnnBiLstm(num_classes=7, options=EcaCnnBiLstmOptions())
>>> model(torch.randn(2, 150, 1)).shape
torch.Size([2, 7])
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
import torch
from torch import Tensor, nn

from ser_ray.models.layers.eca import EcaKernel, EfficientChannelAttention, resolve_kernel_size
from ser_ray.models.registry import ModelOptions, Preset, SerModel, register_model, register_preset

Kernel = Annotated[int, pydantic.Field(ge=1)]


class EcaCnnBiLstmOptions(ModelOptions):
    feature_dim: int = pydantic.Field(
        150,
        ge=1,
        description="input features F: time-means of ZCR 1, RMS 1, MFCC 20, mel 128 "
        "[DEFAULT, spec §4.2]",
    )
    alfb_kernels: tuple[Kernel, ...] = pydantic.Field(
        (5, 5, 3),
        min_length=1,
        description="conv kernel of each ALFB, one entry per block; "
        "'varying kernel sizes', typically 5 [paper summary]; values [DEFAULT]",
    )
    alfb_channels: int = pydantic.Field(
        256, ge=1, description="conv filters per ALFB, 'typically 256' [paper summary]"
    )
    eca: bool = pydantic.Field(
        True, description="ECA in every ALFB; False = ablation 'remove ECA' [spec §4.2]"
    )
    eca_kernel: EcaKernel = pydantic.Field(
        "adaptive",
        description="ECA kernel: 'adaptive' (ECA-Net rule, 5 for 256 channels) or "
        "an odd int [DEFAULT]",
    )
    global_channel: bool = pydantic.Field(
        True,
        description="BiLSTM global feature block; False = ablation 'remove the global "
        "channel' [spec §4.2]",
    )
    topology: Literal["parallel", "serial"] = pydantic.Field(
        "parallel",
        description="BiLSTM over the input sequence (parallel) or over the ALFB "
        "output (serial) [DEFAULT]",
    )
    lstm_hidden: int = pydantic.Field(
        128, ge=1, description="BiLSTM units per direction [DEFAULT]"
    )
    fc_hidden: int = pydantic.Field(128, ge=1, description="hidden Dense width [DEFAULT]")
    dropout: float = pydantic.Field(
        0.3, ge=0.0, lt=1.0, description="dropout after the hidden Dense layer [DEFAULT]"
    )


class Alfb(nn.Module):
    """Attention-based local feature block, (B, C_in, L) → (B, C, ⌈L/2⌉).

    Conv1D ('same' padding, bias) → ReLU → [ECA] → BatchNorm → MaxPool(2, stride 2); the
    pool keeps a trailing odd element like Keras' padding="same" (ceil mode).
    """

    def __init__(
        self, channels_in: int, channels: int, kernel_size: int, eca_kernel: int | None
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels_in, channels, kernel_size, padding="same")
        self.relu = nn.ReLU()
        self.eca = EfficientChannelAttention(eca_kernel) if eca_kernel is not None else None
        self.norm = nn.BatchNorm1d(channels)
        self.pool = nn.MaxPool1d(kernel_size=2, stride=2, ceil_mode=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.conv(x))
        if self.eca is not None:
            x = self.eca(x)
        return self.pool(self.norm(x))


@register_model("eca_cnn_bilstm")
class EcaCnnBiLstm(SerModel):
    """ALFB stack (local) ∥ BiLSTM (global) → concat → Dense → ReLU → Dropout → Dense.

    All layers keep PyTorch's default initialisation [DEFAULT]; `nn.LSTM` has two bias
    vectors per gate (Keras has one), so its count is 8·hidden per direction above Keras'.
    """

    options_class = EcaCnnBiLstmOptions

    def __init__(self, num_classes: int, options: EcaCnnBiLstmOptions) -> None:
        super().__init__()
        self.serial = options.topology == "serial"
        channels = options.alfb_channels
        eca_kernel = resolve_kernel_size(options.eca_kernel, channels) if options.eca else None
        self.local_blocks = nn.Sequential(
            *(
                Alfb(1 if index == 0 else channels, channels, kernel, eca_kernel)
                for index, kernel in enumerate(options.alfb_kernels)
            )
        )
        self.lstm = (
            nn.LSTM(
                input_size=channels if self.serial else 1,
                hidden_size=options.lstm_hidden,
                batch_first=True,
                bidirectional=True,
            )
            if options.global_channel
            else None
        )
        fused = channels + (2 * options.lstm_hidden if options.global_channel else 0)
        self.classifier = nn.Sequential(
            nn.Linear(fused, options.fc_hidden),
            nn.ReLU(),
            nn.Dropout(options.dropout),
            nn.Linear(options.fc_hidden, num_classes),
        )

    @classmethod
    def input_shape(cls, options: EcaCnnBiLstmOptions) -> tuple[int, ...]:
        return (options.feature_dim, 1)

    @classmethod
    def input_options(cls, feature_shape: tuple[int, ...]) -> dict[str, int]:
        return {"feature_dim": feature_shape[0]} if len(feature_shape) == 1 else {}

    def forward(self, x: Tensor) -> Tensor:
        """(B, F, 1) → (B, num_classes) logits."""
        local_map = self.local_blocks(x.transpose(1, 2))  # (B, C, L'), L' = F / 2^blocks
        features = [local_map.mean(dim=2)]
        if self.lstm is not None:
            sequence = local_map.transpose(1, 2) if self.serial else x  # (B, steps, features)
            _, (final_states, _) = self.lstm(sequence)  # (2, B, hidden): forward, backward
            features.append(final_states.transpose(0, 1).flatten(1))
        return self.classifier(torch.cat(features, dim=1))


# No count is fixed by the paper; these follow from the layer formulas (spec §4.2 defaults,
# 7 classes): ALFBs 527,887 (ECA 3 × 5), BiLSTM 134,144 (parallel) / 395,264 (serial),
# Dense 512→128 65,664, Dense 128→7 903 — see tests/models/test_eca_models.py.
for _preset in (
    Preset(
        name="eca_cnn_bilstm",
        model="eca_cnn_bilstm",
        num_classes=7,
        expected_parameters=728_598,
        description="[DEFAULT] reimplementation, parallel topology",
    ),
    Preset(
        name="eca_cnn_bilstm-no-eca",
        model="eca_cnn_bilstm",
        num_classes=7,
        options={"eca": False},
        expected_parameters=728_583,
        description="ablation: remove ECA",
    ),
    Preset(
        name="eca_cnn_bilstm-no-global",
        model="eca_cnn_bilstm",
        num_classes=7,
        options={"global_channel": False},
        expected_parameters=561_686,
        description="ablation: remove the global (BiLSTM) channel",
    ),
    Preset(
        name="eca_cnn_bilstm-serial",
        model="eca_cnn_bilstm",
        num_classes=7,
        options={"topology": "serial"},
        expected_parameters=989_718,
        description="BiLSTM over the ALFB output sequence instead of the input",
    ),
):
    register_preset(_preset)
