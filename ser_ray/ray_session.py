"""Joining a Ray cluster: the job's (RAY_ADDRESS) or a quiet local one started on demand."""

from __future__ import annotations

import os

import ray

# A local cluster started by ser-ray: no usage reporting, no token file that later clients
# would trip over, one BLAS thread per worker, fast Train polling.
LOCAL_RAY_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "OMP_NUM_THREADS": "1",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
}


def ensure_ray() -> str | None:
    """Attach to the running cluster, or start a local one (never resized inside a job).

    A local cluster gets its dashboard (on 127.0.0.1): besides the live view, it serves the
    State API that Ray Train's placement-group cleaner polls every second while a
    TorchTrainer runs, warning on every poll it cannot make.

    Returns the dashboard's URL when this call connected and the cluster has one.
    """
    if ray.is_initialized():
        return None
    if os.environ.get("RAY_ADDRESS"):
        return _url(ray.init().dashboard_url)
    for name, value in LOCAL_RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    context = ray.init(include_dashboard=True, logging_level="ERROR")
    return _url(context.dashboard_url)


def _url(address: str | None) -> str | None:
    if not address:
        return None
    return address if "://" in address else f"http://{address}"
