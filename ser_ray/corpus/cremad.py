"""CREMA-D (Cao et al., 2014): `1001_DFA_ANG_XX.wav` = actor, sentence, emotion, level.

Gender is not in the name: it comes from `VideoDemographics.csv` (ActorID, Sex) in the root.
Only `AudioWAV/` is read; the MP3 copies are a different file type and are ignored.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

from ser_ray.corpus.reader import CorpusReader, register_reader

DEMOGRAPHICS_FILE = "VideoDemographics.csv"
SEX_TO_GENDER = {"female": "F", "male": "M"}


@register_reader
class CremadReader(CorpusReader):
    name = "cremad"
    file_pattern = re.compile(
        r"^(?P<speaker>10[0-8]\d|109[01])_"
        r"(?P<sentence>IEO|TIE|IOM|IWW|TAI|MTI|IWL|ITH|DFA|ITS|TSI|WSI)_"
        r"(?P<emotion>ANG|DIS|FEA|HAP|NEU|SAD)_(?P<level>LO|MD|HI|XX)\.wav$"
    )
    example_name = "1001_DFA_ANG_XX.wav"
    label_map = {
        "ANG": "angry", "DIS": "disgust", "FEA": "fear",
        "HAP": "happy", "NEU": "neutral", "SAD": "sad",
    }

    def __init__(self, root: Path, files: Sequence[Path]) -> None:
        super().__init__(root, files)
        demographics = [path for path in files if path.name == DEMOGRAPHICS_FILE]
        self.gender_of_actor: dict[str, str] = {}
        if demographics:
            with demographics[0].open(newline="", encoding="utf-8-sig") as handle:
                for row in csv.DictReader(handle):
                    gender = SEX_TO_GENDER.get(row.get("Sex", "").strip().lower())
                    if gender:
                        self.gender_of_actor[row["ActorID"].strip()] = gender
        else:
            self.notes.append(f"{DEMOGRAPHICS_FILE} not found under the root: gender is unknown")

    def gender(self, match: re.Match[str]) -> str | None:
        return self.gender_of_actor.get(match["speaker"])
