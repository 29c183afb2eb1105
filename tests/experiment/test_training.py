"""Paper training presets: each seed model starts from its paper's settings."""

from __future__ import annotations

from ser_ray.experiment import paper_training


def test_the_ctmam_preset_selects_the_best_test_epoch_as_its_paper_did() -> None:
    assert paper_training("ctmam").selection == "best-test"
    assert paper_training("ctmam", {"selection": "last"}).selection == "last"


def test_other_presets_report_the_last_epoch() -> None:
    for family in ("eca_cnn", "cnn1d_csa", "eca_cnn_bilstm"):
        assert paper_training(family).selection == "last"


def test_ctmam_asked_for_smoothing_without_mixup_gets_its_code_form() -> None:
    paper = paper_training("ctmam").loss
    assert (paper.kind, paper.mixup_alpha, paper.label_smoothing) == ("ce", 0.2, 0.0)
    assert paper.label_smoothing_form == "ce_plus_smoothed"
    # A `loss` override updates field by field, so the form stays with the ctmam entry.
    smoothed = paper_training("ctmam", {"loss": {"mixup_alpha": 0.0, "label_smoothing": 0.2}})
    assert (smoothed.loss.mixup_alpha, smoothed.loss.label_smoothing) == (0.0, 0.2)
    assert smoothed.loss.label_smoothing_form == "ce_plus_smoothed"
    # Without smoothing the form does nothing, so other kinds still take the ctmam training.
    assert paper_training("ctmam", {"loss": {"kind": "weighted_ce"}}).loss.kind == "weighted_ce"


def test_other_presets_smooth_targets_if_asked_and_do_not_smooth_by_default() -> None:
    for family in ("eca_cnn", "cnn1d_csa", "eca_cnn_bilstm"):
        loss = paper_training(family).loss
        assert (loss.label_smoothing, loss.label_smoothing_form) == (0.0, "smoothed_targets")
