"""The job path for real: `ray start --head` on this machine, `cluster/submit.sh` (which runs
`ray job submit`) with a study whose trial storage is a URI, the job's results on disk,
`ray stop`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ser_ray.experiment import read_ledger

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"


@pytest.mark.slow
@pytest.mark.cluster
def test_a_study_submitted_as_a_ray_job_succeeds(tmp_path: Path) -> None:
    import ray

    ray.shutdown()  # the shared test session's cluster; this test runs last
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    environment.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                       RAY_CLI=str(RAY), PATH=f"{RAY.parent}:{environment['PATH']}",
                       SUBMISSION_ID="ser-ray-test-job")
    subprocess.run([str(RAY), "start", "--head", "--num-cpus=2", "--dashboard-host=127.0.0.1",
                    "--dashboard-port=8265", "--disable-usage-stats"],
                   env=environment, check=True, capture_output=True)
    out, storage = tmp_path / "job", tmp_path / "bucket"
    try:
        job = subprocess.run(
            [str(REPO / "cluster" / "submit.sh"), str(REPO / "search_spaces" / "demo.yaml"),
             str(out), "--cache", str(tmp_path / "cache"),
             "--set", "corpus.synthetic.sessions=2", "--set",
             "corpus.synthetic.utterances_per_speaker=6", "--set", "budget.epochs=1",
             "--set", "features.logmel.recipe.versions=[2, 8]", "--set", "seeds=1",
             "--set", f"storage_path={storage.as_uri()}"],
            env=environment, capture_output=True, text=True, timeout=480)
        from ray.job_submission import JobStatus, JobSubmissionClient

        status = JobSubmissionClient("http://127.0.0.1:8265").get_job_status("ser-ray-test-job")
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=environment, capture_output=True)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert status == JobStatus.SUCCEEDED
    rows = read_ledger(out)
    assert len(rows) == 8 * 2 and all(row.status == "finished" for row in rows)
    assert json.loads((out / "study.json").read_text())["planned_units"] == 16
    assert (out / "report.md").is_file() and (out / "best_model" / "predictor.pt").is_file()
    assert all((storage / "demo" / row.checkpoint).is_dir() for row in rows)
