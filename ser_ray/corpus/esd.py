"""ESD (Zhou et al., 2021): `0005_000351.wav` = speaker, index; the index range is the emotion.

Speakers 0001–0010 speak Mandarin, 0011–0020 English. When a file sits in an emotion folder
(`Angry/`, possibly under `train/` etc.), the folder must agree with the index range; a file
whose folder disagrees is skipped as mislabelled rather than trusted either way.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_ray.corpus.reader import CorpusReader, NameFields, SkipFile, register_reader

MALE_SPEAKERS = frozenset({"0004", "0005", "0006", "0008", "0010", "0011", "0012", "0013",
                           "0014", "0020"})
UTTERANCES_PER_EMOTION = 350
EMOTIONS_IN_INDEX_ORDER = ("Neutral", "Angry", "Happy", "Sad", "Surprise")


@register_reader
class EsdReader(CorpusReader):
    name = "esd"
    file_pattern = re.compile(r"^(?P<speaker>00(?:0[1-9]|1\d|20))_(?P<index>\d{6})\.wav$")
    example_name = "0005_000351.wav"
    label_map = {
        "Neutral": "neutral", "Angry": "angry", "Happy": "happy",
        "Sad": "sad", "Surprise": "surprise",
    }

    def parse(self, path: Path, match: re.Match[str]) -> NameFields:
        index = int(match["index"])
        if not 1 <= index <= UTTERANCES_PER_EMOTION * len(EMOTIONS_IN_INDEX_ORDER):
            raise SkipFile("bad_name", f"utterance index {index} is outside 1–1750")
        emotion = EMOTIONS_IN_INDEX_ORDER[(index - 1) // UTTERANCES_PER_EMOTION]
        folder_emotion = next(
            (part for part in reversed(path.parent.parts) if part in self.label_map), None
        )
        if folder_emotion is not None and folder_emotion != emotion:
            raise SkipFile(
                "mislabelled",
                f"file lies in folder {folder_emotion!r} but index {index} is {emotion!r}",
            )
        return NameFields(
            utterance_id=path.stem,
            speaker=match["speaker"],
            raw_label=emotion,
            gender="M" if match["speaker"] in MALE_SPEAKERS else "F",
        )
