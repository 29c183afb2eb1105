"""Scan a corpus tree into a manifest: one walk, headers only, each bad file kept with a reason."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import soundfile
from tqdm import tqdm

from ser_ray.corpus.manifest import MANIFEST_COLUMNS, Skipped, write_manifest
from ser_ray.corpus.reader import CorpusReader, LabelledUtterance, SkipFile, get_reader
from ser_ray.errors import UserError, unreadable_reason

AUDIO_SUFFIX = ".wav"
DEFAULT_MIN_DURATION_S = 0.1


@dataclass(frozen=True)
class AudioHeader:
    duration_s: float
    sample_rate: int
    channels: int


@dataclass
class ScanResult:
    corpus: str
    root: Path
    manifest: pd.DataFrame
    skipped: list[Skipped]
    notes: list[str] = field(default_factory=list)
    ignored_files: int = 0

    def provenance(self) -> dict[str, object]:
        return {
            "corpus": self.corpus,
            "root": str(self.root),
            "utterances": len(self.manifest),
            "skipped": len(self.skipped),
            "notes": self.notes,
        }


@dataclass
class CorpusTree:
    """The files under a corpus root, and the folders under it that a scan reports."""

    files: list[Path] = field(default_factory=list)
    unlisted: list[Skipped] = field(default_factory=list)
    """Folders not scanned: unreadable ones, and links to folders scanned already."""
    audio_named_folders: list[Path] = field(default_factory=list)
    """Folders named like audio files (scanned as any folder): the file a user expects at
    such a path is not there."""

    def record_unlisted(self, error: OSError) -> None:
        folder = Path(error.filename)
        reason = unreadable_reason(folder, error, "directory")
        self.unlisted.append(Skipped(str(folder), "unreadable",
                                     f"{reason}; no file under it was scanned"))


def walk_tree(root: Path) -> CorpusTree:
    """Every file under root except hidden ones (`._*` AppleDouble, `.DS_Store`, `.git/`).

    Links to folders are followed, since corpora are often assembled from links into other
    disks, but only after every real folder is walked, and each folder is listed once: a
    folder reached again (a link back to an ancestor, a second link to one folder) is kept
    as `duplicate` naming the path it was scanned under. Readers read speakers and labels
    from folder names, so the real name must win over a link's. A folder that cannot be
    listed is kept as `unreadable` with its reason, because every file under it is missing.
    """
    tree = CorpusTree()
    scanned_as: dict[tuple[int, int], Path] = {}
    links = [root]
    while links:
        top = links.pop(0)
        # followlinks=True only spares os.walk its own link test: links are taken out of
        # `subdirs` below and walked later from `links`.
        for directory, subdirs, names in os.walk(top, onerror=tree.record_unlisted,
                                                 followlinks=True):
            folder = Path(directory)
            try:
                status = folder.stat()
            except OSError as error:  # gone or unreachable since it was listed
                tree.record_unlisted(error)
                subdirs[:] = []
                continue
            identity = (status.st_dev, status.st_ino)
            if identity in scanned_as:
                tree.unlisted.append(Skipped(
                    str(folder), "duplicate",
                    f"a link to a folder already scanned as {scanned_as[identity]}"))
                subdirs[:] = []
                continue
            scanned_as[identity] = folder
            if folder != root and is_audio_name(folder.name):
                tree.audio_named_folders.append(folder)
            visible = sorted(name for name in subdirs if not name.startswith("."))
            # os.path.islink, not Path.is_symlink: a path past PATH_MAX must reach os.walk's
            # listing, which reports it, instead of raising here.
            linked = {name for name in visible if os.path.islink(folder / name)}
            subdirs[:] = [name for name in visible if name not in linked]
            links += [folder / name for name in visible if name in linked]
            tree.files += [folder / name for name in sorted(names) if not name.startswith(".")]
    return tree


def probe_header(path: Path, min_duration_s: float) -> AudioHeader:
    """Read the header only (no decoding) or raise SkipFile naming what is wrong; a file that
    cannot be read at all raises OSError."""
    status = path.stat()
    if not stat.S_ISREG(status.st_mode):
        # A pipe would block the header read, and its size 0 would be misread as empty.
        raise SkipFile("not_a_file", "a pipe, socket or device named like an audio file")
    if status.st_size == 0:
        raise SkipFile("empty", "empty file (0 bytes)")
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as error:
        with path.open("rb") as handle:
            magic = handle.read(4)
        if magic in (b"RIFF", b"RIFX", b"RF64"):
            raise SkipFile("bad_header", f"unreadable WAV header ({error})") from error
        raise SkipFile("not_audio", "not an audio file (no RIFF/WAV header)") from error
    if info.frames == 0 or info.samplerate <= 0:
        raise SkipFile("empty", "WAV header declares no audio samples")
    duration_s = info.frames / info.samplerate
    if duration_s < min_duration_s:
        raise SkipFile("too_short", too_short_reason(duration_s, min_duration_s))
    return AudioHeader(duration_s, int(info.samplerate), int(info.channels))


def too_short_reason(duration_s: float, min_duration_s: float) -> str:
    return f"too short ({duration_s:.3f} s < minimum {min_duration_s:g} s)"


def scan_corpus(
    corpus: str,
    root: Path,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    progress: bool = False,
) -> ScanResult:
    """Read every labelled utterance of `corpus` under `root`; a bad file never stops the scan."""
    reader_class = get_reader(corpus)
    if not root.is_dir():
        raise UserError(f"corpus root {root} is not a directory")
    tree = walk_tree(root)
    files = tree.files
    reader = reader_class(root, files)
    audio_files = [path for path in files if is_audio_name(path.name)]
    rows: list[dict[str, object]] = []
    skipped = [*tree.unlisted, *map(audio_named_folder, tree.audio_named_folders)]
    first_path_of: dict[str, Path] = {}
    for path in tqdm(audio_files, desc=f"scan {corpus}", unit="file", disable=not progress):
        try:
            rows.append(_row(reader, path, min_duration_s, first_path_of))
        except SkipFile as skip:
            skipped.append(Skipped(str(path), skip.reason_code, skip.reason))
        except OSError as error:
            skipped.append(Skipped(str(path), "unreadable", unreadable_reason(path, error)))
    audio_paths = [*audio_files, *tree.audio_named_folders]
    skipped += map(missing_audio, labelled_without_audio(reader, audio_paths))
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return ScanResult(
        corpus=corpus,
        root=root,
        manifest=manifest,
        skipped=skipped,
        notes=reader.notes,
        ignored_files=len(files) - len(audio_files),
    )


def is_audio_name(name: str) -> bool:
    return Path(name).suffix.lower() == AUDIO_SUFFIX


def audio_named_folder(folder: Path) -> Skipped:
    return Skipped(str(folder), "not_a_file",
                   "a directory named like an audio file (the files in it are scanned as usual)")


def labelled_without_audio(
    reader: CorpusReader, audio_paths: list[Path]
) -> list[LabelledUtterance]:
    """Labelled utterances with no audio path of their id anywhere in the tree. A path that
    is there but unusable is already skipped with its own reason, so it counts as present."""
    present = {reader.utterance_id(path) for path in audio_paths}
    return [item for item in reader.labelled.values() if item.utterance_id not in present]


def missing_audio(item: LabelledUtterance) -> Skipped:
    return Skipped(
        str(item.audio_path), "missing_audio",
        f"label file {item.label_file} labels {item.utterance_id} ({item.raw_label}), but no "
        f"audio file {item.audio_path.name} is under the corpus root (an incomplete download?)",
    )


def _row(
    reader: CorpusReader, path: Path, min_duration_s: float, first_path_of: dict[str, Path]
) -> dict[str, object]:
    fields = reader.fields(path)
    if fields.utterance_id in first_path_of:
        raise SkipFile(
            "duplicate",
            f"duplicate of {first_path_of[fields.utterance_id]} (same utterance id "
            f"{fields.utterance_id})",
        )
    header = probe_header(path, min_duration_s)
    first_path_of[fields.utterance_id] = path
    return {
        "utterance_id": fields.utterance_id,
        "path": str(path),
        "corpus": reader.name,
        "speaker": reader.speaker_id(fields.speaker),
        "gender": fields.gender,
        "session": fields.session,
        "raw_label": fields.raw_label,
        "label": reader.canonical_label(fields.raw_label),
        "duration_s": header.duration_s,
        "sample_rate": header.sample_rate,
        "channels": header.channels,
        "improvised": fields.improvised,
    }


def summarize(result: ScanResult) -> str:
    """The scan summary a person reads: counts per label, per speaker, and skipped per reason."""
    lines = [f"{result.corpus}: {len(result.manifest)} utterances from {result.root}"]
    lines.extend(describe_manifest(result.manifest))
    if result.skipped:
        reasons = pd.Series([s.reason_code for s in result.skipped])
        lines.append(f"  skipped {len(result.skipped)}: " + _counts(reasons))
    if result.ignored_files:
        lines.append(f"  ignored {result.ignored_files} files that are not {AUDIO_SUFFIX}")
    lines.extend(f"  note: {note}" for note in result.notes)
    return "\n".join(lines)


def describe_manifest(manifest: pd.DataFrame) -> list[str]:
    if manifest.empty:
        return []
    hours = manifest["duration_s"].sum() / 3600
    return [
        f"  {manifest['speaker'].nunique()} speakers, {hours:.2f} h, sample rates "
        f"{sorted(manifest['sample_rate'].unique().tolist())}, channels "
        f"{sorted(manifest['channels'].unique().tolist())}",
        "  per label:   " + _counts(manifest["label"]),
        "  per speaker: " + _counts(manifest["speaker"]),
    ]


def _counts(values: pd.Series) -> str:
    counts = values.value_counts().sort_index()
    return ", ".join(f"{key} {count}" for key, count in counts.items())


def write_scan(result: ScanResult, manifest_path: Path) -> None:
    """The manifest, and `<stem>_skipped.csv` beside it listing every skipped file and why."""
    write_manifest(result.manifest, manifest_path, result.provenance(), result.skipped)
