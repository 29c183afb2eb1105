"""SUBESCO (Sultana et al., 2021), Bangla: `F_02_MONIKA_S_2_SURPRISE_3.wav`.

Fields: gender, speaker number, speaker name, `S`, sentence 1–10, emotion, take 1–5; the
speaker is gender + number + name (20 speakers). One published file carries a stray `]`
before `.wav`; it is read, and its id drops the bracket.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_ray.corpus.reader import CorpusReader, register_reader


@register_reader
class SubescoReader(CorpusReader):
    name = "subesco"
    file_pattern = re.compile(
        r"^(?P<speaker>(?P<gender>[FM])_(?P<number>\d{2})_(?P<name>[A-Z]+))_S_"
        r"(?P<sentence>10|[1-9])_"
        r"(?P<emotion>ANGRY|DISGUST|FEAR|HAPPY|NEUTRAL|SAD|SURPRISE)_(?P<take>[1-5])\]?\.wav$"
    )
    example_name = "F_02_MONIKA_S_2_SURPRISE_3.wav"
    label_map = {
        "ANGRY": "angry", "DISGUST": "disgust", "FEAR": "fear", "HAPPY": "happy",
        "NEUTRAL": "neutral", "SAD": "sad", "SURPRISE": "surprise",
    }

    def utterance_id(self, path: Path) -> str:
        return path.stem.rstrip("]")
