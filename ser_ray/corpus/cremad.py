"""CREMA-D (Cao et al., 2014): `1001_DFA_ANG_XX.wav` = actor, sentence, emotion, level.

Gender is not in the name: it comes from `VideoDemographics.csv` (ActorID, Sex) in the root.
Only `AudioWAV/` is read; the MP3 copies are a different file type and are ignored.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path

from ser_ray.corpus.reader import CorpusReader, register_reader
from ser_ray.errors import UserError, unreadable_reason

DEMOGRAPHICS_FILE = "VideoDemographics.csv"
DEMOGRAPHICS_COLUMNS = ("ActorID", "Sex")
DEMOGRAPHICS_EXPECTED = f"a UTF-8 CSV file with the columns {', '.join(DEMOGRAPHICS_COLUMNS)}"
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
            self.gender_of_actor = read_gender_of_actor(demographics[0])
        else:
            self.notes.append(f"{DEMOGRAPHICS_FILE} not found under the root: gender is unknown")

    def gender(self, match: re.Match[str]) -> str | None:
        return self.gender_of_actor.get(match["speaker"])


def read_gender_of_actor(path: Path) -> dict[str, str]:
    """ActorID -> F/M from the demographics table; a table that cannot be read this way is a
    user error, since a silently missing gender would skew every gender-balanced fold."""
    table = csv.DictReader(io.StringIO(read_utf8(path), newline=""))
    try:
        require_demographics_columns(path, list(table.fieldnames or []))
        rows = list(table)
    except csv.Error as error:
        raise UserError(
            f"{path} is not a readable CSV table ({error}); expected {DEMOGRAPHICS_EXPECTED}"
        ) from error
    return _actor_genders(path, rows)


def _actor_genders(path: Path, rows: list[dict[str, str]]) -> dict[str, str]:
    """ActorID → F/M. A Sex value outside Female/Male or an actor listed twice with different
    values is an error: guessing would put the actor's folds out of gender balance unseen."""
    genders: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        actor, sex = (row["ActorID"] or "").strip(), (row["Sex"] or "").strip()
        if not actor:
            continue
        gender = SEX_TO_GENDER.get(sex.lower())
        if gender is None:
            raise UserError(f"{path} line {line}: Sex {sex!r} of actor {actor} is not one of "
                            f"Female, Male")
        if genders.setdefault(actor, gender) != gender:
            raise UserError(f"{path} line {line}: actor {actor} is listed again with another "
                            f"Sex ({sex!r}); keep one row per actor")
    return genders


def read_utf8(path: Path) -> str:
    """The file's text without a byte-order mark, or a user error saying where it is not UTF-8."""
    try:
        data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    except OSError as error:
        raise UserError(f"{path}: {unreadable_reason(path, error)}") from error
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UserError(
            f"{path} is not UTF-8 text (byte {data[error.start]:#04x} on line {line}); "
            f"expected {DEMOGRAPHICS_EXPECTED}"
        ) from error


def require_demographics_columns(path: Path, header: list[str]) -> None:
    missing = [name for name in DEMOGRAPHICS_COLUMNS if name not in header]
    if missing:
        raise UserError(
            f"{path} lacks the column(s) {', '.join(missing)} (its header: "
            f"{', '.join(header) or 'none'}); expected {DEMOGRAPHICS_EXPECTED}"
        )
