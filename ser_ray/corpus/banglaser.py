"""BanglaSER (Das et al., 2022): RAVDESS-style names `03-01-01-01-01-01-01.wav`, 34 actors.

Fields: audio-only, scripted, emotion (01 happy … 05 neutral), intensity, statement (01–03),
repetition (01–03), actor (odd = male).
"""

from __future__ import annotations

import re

from ser_ray.corpus.reader import CorpusReader, gender_of_numbered_actor, register_reader


@register_reader
class BanglaserReader(CorpusReader):
    name = "banglaser"
    file_pattern = re.compile(
        r"^(?P<mode>03)-(?P<script>01)-(?P<emotion>0[1-5])-(?P<intensity>0[12])-"
        r"(?P<statement>0[1-3])-(?P<repetition>0[1-3])-(?P<speaker>0[1-9]|[12]\d|3[0-4])\.wav$"
    )
    example_name = "03-01-01-01-01-01-01.wav"
    label_map = {"01": "happy", "02": "sad", "03": "angry", "04": "surprise", "05": "neutral"}

    def gender(self, match: re.Match[str]) -> str:
        return gender_of_numbered_actor(match)
