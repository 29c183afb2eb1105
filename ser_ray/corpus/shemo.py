"""ShEMO (Mohamad Nezami et al., 2019): `F01A01.wav` = gender, speaker within gender, emotion.

The speaker number restarts per gender, so the speaker id keeps the gender letter (F01 ≠ M01).
"""

from __future__ import annotations

import re

from ser_ray.corpus.reader import CorpusReader, register_reader


@register_reader
class ShemoReader(CorpusReader):
    name = "shemo"
    file_pattern = re.compile(
        r"^(?P<speaker>(?P<gender>[FM])\d{2})(?P<emotion>[AHNSWF])(?P<index>\d{2})\.wav$"
    )
    example_name = "F01A01.wav"
    label_map = {
        "A": "angry", "H": "happy", "N": "neutral", "S": "sad", "W": "surprise", "F": "fear",
    }
