"""The trial process's handling of exceptions Python cannot raise."""

from __future__ import annotations

import gc
import sys

import pytest

from ser_ray.study.trial import ignore_exit_while_collecting


class _RaisesWhenCollected:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __del__(self) -> None:
        raise self.error


def test_exit_raised_while_collecting_is_silent_other_errors_are_reported(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # restored afterwards
    ignore_exit_while_collecting()
    ignore_exit_while_collecting()  # a reused trial process installs it again
    _RaisesWhenCollected(SystemExit(1))
    gc.collect()
    assert "Exception ignored" not in capsys.readouterr().err
    _RaisesWhenCollected(ValueError("a real fault"))
    gc.collect()
    reported = capsys.readouterr().err
    assert "Exception ignored" in reported and "ValueError: a real fault" in reported
