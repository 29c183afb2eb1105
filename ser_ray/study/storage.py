"""Where a study's trial results and checkpoints live: its trial storage.

The experiment directory (ledger, replays, optuna.db, progress.md, report, best_model) is a
directory on the driver's filesystem, because SQLite needs POSIX file locking; on a cluster
it must be a mount every node shares (trials read its prepared data and ledger). Tune's and
Train's results, TensorBoard logs and checkpoints go to the trial storage instead: by default
the experiment directory itself, or `<storage_path>/<study name>` when the study sets
`storage_path` to a URI that `pyarrow.fs.FileSystem.from_uri` understands (s3://, gs://,
file://, hdfs://, abfs://) or a local directory. Under it, Tune runs are `tune/run-N/` and the
TorchTrainer runs of multi-worker trials `train/train-<trial id>/`.

Ray (writing) and pyarrow (reading the best checkpoint back) resolve these URIs themselves, so
a study reaches object storage with the cloud credentials of the nodes (e.g. an instance
profile or GOOGLE_APPLICATION_CREDENTIALS).
"""

from __future__ import annotations

import contextlib
import posixpath
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pyarrow
import pyarrow.fs

from ser_ray.errors import UserError

TUNE_DIR = "tune"
TRAIN_DIR = "train"
RUN_PREFIX = "run-"


def trial_storage(storage_path: str | None, study_name: str, experiment_dir: Path) -> str:
    """The study's trial storage, a URI or an absolute local path."""
    if storage_path is None:
        return str(Path(experiment_dir).resolve())
    return storage_child(storage_path, study_name)


def storage_child(root: str, *parts: str) -> str:
    """`root` joined with `parts`, before a URI's query (s3://b/p?region=x → s3://b/p/a?...)."""
    address = urllib.parse.urlsplit(root)
    if not address.scheme:
        return str(Path(root).joinpath(*parts))
    path = posixpath.join(address.path or "/", *parts)
    return urllib.parse.urlunsplit(address._replace(path=path))


def filesystem(root: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow filesystem of `root` and its path there, as Ray resolves it."""
    try:
        return pyarrow.fs.FileSystem.from_uri(root)
    except (pyarrow.ArrowException, OSError) as error:
        raise UserError(f"storage_path {root!r} cannot be opened ({error}); use a local "
                        f"directory or a URI such as s3://bucket/prefix, gs://bucket/prefix "
                        f"or file:///absolute/path, with credentials for it") from error


def next_run_name(storage: str) -> str:
    """`run-N` after the study's existing Tune runs in its storage."""
    store, path = filesystem(storage_child(storage, TUNE_DIR))
    entries = store.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    runs = [entry for entry in entries if entry.base_name.startswith(RUN_PREFIX)]
    return f"{RUN_PREFIX}{len(runs) + 1}"


@contextlib.contextmanager
def checkpoint_directory(storage: str, relative: str) -> Iterator[Path]:
    """The checkpoint at `relative` in the trial storage as a local directory: itself where
    the storage is local, else a temporary copy. FileNotFoundError when it is not there."""
    store, path = filesystem(storage)
    location = posixpath.join(path, relative)
    if isinstance(store, pyarrow.fs.LocalFileSystem):
        if not Path(location).is_dir():
            raise FileNotFoundError(f"no checkpoint at {location}")
        yield Path(location)
        return
    with tempfile.TemporaryDirectory(prefix="ser-ray-checkpoint-") as local:
        pyarrow.fs.copy_files(location, local, source_filesystem=store)
        yield Path(local)
