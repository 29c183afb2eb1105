"""Ray Train's report loggers are where ser-ray quiets them (a drift check for the Ray range)."""

from __future__ import annotations

import logging


def test_the_loggers_ray_train_reports_through_exist_under_the_names_we_quiet() -> None:
    import ray
    from ray.train.torch import TorchTrainer  # noqa: F401  (loads Ray Train's execution code)

    from ser_ray.train.ray_train import report_logger_names

    names = report_logger_names()
    existing = set(logging.Logger.manager.loggerDict)
    missing = [name for name in names if name not in existing]
    assert len(names) == 3 and not missing, (
        f"Ray {ray.__version__} no longer logs reports through {missing}: find its report and "
        f"checkpoint loggers, update REPORT_LOGGERS in ser_ray/train/ray_train.py and the Ray "
        f"range in pyproject.toml")
