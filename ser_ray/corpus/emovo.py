"""EMOVO (Costantini et al., 2014): `dis-f2-b1.wav` = emotion, speaker, sentence; 6 actors."""

from __future__ import annotations

import re

from ser_ray.corpus.reader import CorpusReader, register_reader


@register_reader
class EmovoReader(CorpusReader):
    name = "emovo"
    file_pattern = re.compile(
        r"^(?P<emotion>dis|gio|neu|pau|rab|sor|tri)-(?P<speaker>[fm][1-3])-"
        r"(?P<sentence>b[1-3]|l[1-4]|n[1-5]|d[12])\.wav$"
    )
    example_name = "dis-f2-b1.wav"
    label_map = {
        "neu": "neutral", "dis": "disgust", "gio": "happy", "pau": "fear",
        "rab": "angry", "sor": "surprise", "tri": "sad",
    }

    def gender(self, match: re.Match[str]) -> str:
        return match["speaker"][0].upper()
