"""RAVDESS (Livingstone & Russo, 2018), speech only: `03-01-06-01-02-01-12.wav`.

Fields: modality, vocal channel (01 speech, 02 song), emotion, intensity, statement,
repetition, actor (odd = male). Song and video files are skipped with their reason.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_ray.corpus.reader import (
    CorpusReader,
    NameFields,
    SkipFile,
    gender_of_numbered_actor,
    register_reader,
)


@register_reader
class RavdessReader(CorpusReader):
    name = "ravdess"
    file_pattern = re.compile(
        r"^(?P<modality>0[1-3])-(?P<channel>0[12])-(?P<emotion>0[1-8])-(?P<intensity>0[12])-"
        r"(?P<statement>0[12])-(?P<repetition>0[12])-(?P<speaker>0[1-9]|1\d|2[0-4])\.wav$"
    )
    example_name = "03-01-06-01-02-01-12.wav"
    label_map = {
        "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
        "05": "angry", "06": "fear", "07": "disgust", "08": "surprise",
    }

    def parse(self, path: Path, match: re.Match[str]) -> NameFields:
        if match["channel"] == "02":
            raise SkipFile("song", "song recording (vocal channel 02); only speech is scanned")
        if match["modality"] != "03":
            raise SkipFile("not_audio_only", "audio-visual or video-only modality (01/02)")
        return super().parse(path, match)

    def gender(self, match: re.Match[str]) -> str:
        return gender_of_numbered_actor(match)
