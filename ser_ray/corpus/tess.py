"""TESS (Dupuis & Pichora-Fuller, 2010): `OAF_back_angry.wav` = speaker, word, emotion.

Two female speakers (OAF aged 64, YAF aged 26). Mirrors sort the files into folders whose
spelling varies, so only the file name is trusted.
"""

from __future__ import annotations

import re

from ser_ray.corpus.reader import CorpusReader, register_reader


@register_reader
class TessReader(CorpusReader):
    name = "tess"
    file_pattern = re.compile(
        r"^(?P<speaker>OAF|YAF)_(?P<word>[a-z]+)_"
        r"(?P<emotion>angry|disgust|fear|happy|neutral|ps|sad)\.wav$"
    )
    example_name = "OAF_back_angry.wav"
    label_map = {
        "angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
        "neutral": "neutral", "ps": "surprise", "sad": "sad",
    }

    def gender(self, match: re.Match[str]) -> str:
        return "F"
