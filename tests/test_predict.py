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
    blip = tmp_path / "blip.wav"
    soundfile.write(blip, np.full(10, 0.5, np.float32), 16000)
    status = main(["predict", "--checkpoint", str(predictor_path), str(garbage),
                   str(corpus_wav(tiny_study)), str(silent), str(blip),
                   str(tmp_path / "missing.wav")])
    captured = capsys.readouterr()
    assert status == 2
    assert "4 of 5 files could not be labelled" in captured.err
    for reason in ("could not decode audio", "every sample is zero", "too short to label",
                   "no such file"):
        assert reason in captured.err
    lines = [line for line in captured.out.splitlines() if ".wav" in line]
    assert len(lines) == 5
    assert sum("—" not in line.split()[1] for line in lines) == 1


def test_a_missing_checkpoint_is_a_user_error(tmp_path, capsys) -> None:
    assert main(["predict", "--checkpoint", str(tmp_path / "none.pt"), "x.wav"]) == 2
    assert "does not exist" in capsys.readouterr().err


def _run_exported(path: Path, features: np.ndarray) -> np.ndarray:
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path))
        return session.run(None, {session.get_inputs()[0].name: features})[0]
    with torch.no_grad():
        return torch.export.load(path).module()(torch.from_numpy(features)).numpy()


@pytest.mark.parametrize("suffix", [".onnx", ".pt2"])
def test_the_export_gives_the_predictor_s_probabilities(tiny_study, predictor_path, tmp_path,
                                                        suffix) -> None:
    if suffix == ".onnx":
        for package in ("onnx", "onnxscript", "onnxruntime"):
            pytest.importorskip(package)
    out = tmp_path / f"model{suffix}"
    assert main(["export", "--checkpoint", str(predictor_path), "--out", str(out)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    predictor = Predictor(predictor_path)
    assert sidecar["label_names"] == predictor.label_names
    from ser_ray.features.audio import load_waveform

    waveforms = [load_waveform(path, 16000) for path in
                 sorted(tiny_study.root.rglob("*.wav"))[:3]]
    # Three utterances in one batch: the exported batch dimension is not fixed to the example's.
    features = np.stack([items[0].features for items in
                         predictor.recipe.featurize_batch(waveforms)]).astype(np.float32)
    exported = np.exp(_run_exported(out, features))
    expected = [list(predictor.probabilities(waveform).values()) for waveform in waveforms]
    assert exported == pytest.approx(np.array(expected), abs=1e-5)


def test_an_unknown_export_suffix_names_the_formats(predictor_path, tmp_path, capsys) -> None:
    assert main(["export", "--checkpoint", str(predictor_path), "--out",
                 str(tmp_path / "model.bin")]) == 2
    assert ".onnx" in capsys.readouterr().err
