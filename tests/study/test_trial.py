"""The trial process's handling of exceptions Python cannot raise."""

from __future__ import annotations

import gc
import sys
from typing import Any

import pytest

from ser_ray.study.trial import ignore_exit_while_collecting


class _RaisesWhenCollected:
    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.cycle = self  # freed by the garbage collector, not by reference counting

    def __del__(self) -> None:
        raise self.error


def test_exit_raised_while_collecting_is_dropped_others_reach_the_earlier_hook(
        monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: reported.append(unraisable))
    ignore_exit_while_collecting()
    installed = sys.unraisablehook
    ignore_exit_while_collecting()  # a reused trial process installs it again
    assert sys.unraisablehook is installed

    _RaisesWhenCollected(SystemExit(1))
    gc.collect()
    assert reported == []
    _RaisesWhenCollected(ValueError("a real fault"))
    gc.collect()
    assert [str(unraisable.exc_value) for unraisable in reported] == ["a real fault"]
