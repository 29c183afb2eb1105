from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def study_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for every study test: the tiny corpus's features are built once."""
    return tmp_path_factory.mktemp("study_cache")
