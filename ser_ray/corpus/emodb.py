"""EMO-DB (Burkhardt et al., 2005): `03a01Fa.wav` = speaker, text, German emotion letter, take."""

from __future__ import annotations

import re

from ser_ray.corpus.reader import CorpusReader, register_reader

SPEAKER_GENDER = {
    "03": "M", "08": "F", "09": "F", "10": "M", "11": "M",
    "12": "M", "13": "F", "14": "F", "15": "M", "16": "F",
}


@register_reader
class EmodbReader(CorpusReader):
    name = "emodb"
    file_pattern = re.compile(
        r"^(?P<speaker>03|08|09|10|11|12|13|14|15|16)(?P<text>a0[12457]|b0[1239]|b10)"
        r"(?P<emotion>[WLEAFTN])(?P<version>[a-z])\.wav$"
    )
    example_name = "03a01Fa.wav"
    label_map = {
        "W": "angry", "L": "boredom", "E": "disgust", "A": "fear",
        "F": "happy", "T": "sad", "N": "neutral",
    }

    def gender(self, match: re.Match[str]) -> str:
        return SPEAKER_GENDER[match["speaker"]]
