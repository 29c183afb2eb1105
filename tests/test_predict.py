"""`ser-ray predict` and `ser-ray export` on a model trained on the tiny synthetic corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from ser_ray.cli import main
from ser_ray.predict import Predictor


@pytest.fixture(scope="module")
def predictor_path(tiny_study, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("predict") / "run"
    assert main(["train", "--manifest", str(tiny_study.selected_manifest), "--folds",
                 str(tiny_study.folds), "--cache", str(tiny_study.cache_root), "--recipe",
                 "logmel", "--versions", "2,8", "--set", "recipe.duration_s=2", "--augment",
                 "noise:snr=20", "--version", "8", "--model", "eca_cnn", "--set", "scale=1",
                 "--set", "base_width=4", "--set", "train.standardize=train-fold",
                 "--epochs", "1", "--workers", "0", "--out", str(out)]) == 0
    return out / "model" / "predictor.pt"


def corpus_wav(tiny_study) -> Path:
    return next(tiny_study.root.rglob("*.wav"))


def test_predict_labels_a_corpus_file_and_a_stereo_44k_copy(tiny_study, predictor_path,
                                                             tmp_path, capsys) -> None:
    source = corpus_wav(tiny_study)
    samples, rate = soundfile.read(source, dtype="float32")
    from scipy.signal import resample_poly

    wide = resample_poly(samples, 441, 160).astype(np.float32)
    stereo = tmp_path / "stereo44k.wav"
    soundfile.write(stereo, np.stack([wide, wide], axis=1), 44100)
    assert main(["predict", "--checkpoint", str(predictor_path), str(source), str(stereo),
                 "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["error"] for r in results] == [None, None]
    for result in results:
        assert set(result["probabilities"]) == {"angry", "happy", "neutral", "sad"}
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    # The same speech at another rate and channel count is read into nearly the same input.
    first, second = (np.array(list(r["probabilities"].values())) for r in results)
    assert np.abs(first - second).max() < 0.05


def test_bad_files_are_named_and_the_good_ones_still_labelled(tiny_study, predictor_path,
                                                              tmp_path, capsys) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file")
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    status = main(["predict", "--checkpoint", str(predictor_path), str(garbage),
                   str(corpus_wav(tiny_study)), str(silent)])
    captured = capsys.readouterr()
    assert status == 2
    assert "2 of 3 files could not be labelled" in captured.err
    assert "could not decode audio" in captured.err and "every sample is zero" in captured.err
    lines = [line for line in captured.out.splitlines() if ".wav" in line]
    assert len(lines) == 3
    assert sum("—" not in line.split()[1] for line in lines) == 1


def test_a_missing_checkpoint_is_a_user_error(tmp_path, capsys) -> None:
    assert main(["predict", "--checkpoint", str(tmp_path / "none.pt"), "x.wav"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_exported_program_gives_the_predictor_s_probabilities(tiny_study, predictor_path,
                                                                  tmp_path) -> None:
    out = tmp_path / "model.pt2"
    assert main(["export", "--checkpoint", str(predictor_path), "--out", str(out)]) == 0
    scripted = torch.export.load(out).module()
    sidecar = json.loads(out.with_suffix(".json").read_text())
    predictor = Predictor(predictor_path)
    assert sidecar["label_names"] == predictor.label_names
    from ser_ray.features.audio import load_waveform

    waveform = load_waveform(corpus_wav(tiny_study), 16000)
    (items,) = predictor.recipe.featurize_batch([waveform])
    features = torch.from_numpy(np.stack([items[0].features]))
    exported = scripted(features).exp()[0].tolist()
    expected = list(predictor.probabilities(waveform).values())
    assert exported == pytest.approx(expected, abs=1e-5)
