"""Paper training presets: each seed model starts from its paper's settings."""

from __future__ import annotations

from ser_ray.experiment import paper_training


def test_the_ctmam_preset_selects_the_best_test_epoch_as_its_paper_did() -> None:
    assert paper_training("ctmam").selection == "best-test"
    assert paper_training("ctmam", {"selection": "last"}).selection == "last"


def test_other_presets_report_the_last_epoch() -> None:
    for family in ("eca_cnn", "cnn1d_csa", "eca_cnn_bilstm"):
        assert paper_training(family).selection == "last"
