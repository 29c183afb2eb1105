#!/usr/bin/env bash
# Submit a study to a running Ray cluster as a Ray job and stream its log until it ends.
#
#   cluster/submit.sh STUDY.yaml OUT_DIR [more `ser-ray search` flags, e.g. --cache DIR
#                                         or --set budget.epochs=1 for a smoke run]
#   cluster/submit.sh search_spaces/demo.yaml /shared/ser-ray/demo \
#       --set storage_path=s3://my-bucket/ser-ray      # or gs://my-bucket/ser-ray
#
# OUT_DIR (ledger, optuna.db, progress.md, report, best model) must be an absolute POSIX
# directory every node mounts (NFS, EFS, Filestore): SQLite needs file locking, so not an
# object-store mount. Trial results and checkpoints go to the study's `storage_path` when it
# is set (a local directory or s3://, gs://, file:// URI), under STORAGE/<study name>/. The
# job runs in a copy of this repository under /tmp/ray/session_*/runtime_resources.
# RAY_ADDRESS picks the cluster (default: the local head's dashboard, http://127.0.0.1:8265);
# SUBMISSION_ID names the job (default: ser-ray-<study>-<time>).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: cluster/submit.sh STUDY.yaml OUT_DIR [ser-ray search flags]" >&2
  exit 2
fi
study=$1
out=$2
shift 2
case "$out" in
  /*) ;;
  *) out="$(pwd)/$out" ;;
esac
repo="$(cd "$(dirname "$0")/.." && pwd)"
# The job runs in a copy of the repository, so the study is named relative to its root.
study="$(realpath --relative-to="$repo" "$study")"
if [[ "$study" == ../* ]]; then
  echo "cluster/submit.sh: the study file must be inside the repository ($repo), which is" \
       "shipped as the job's working directory" >&2
  exit 2
fi
ray_cli="${RAY_CLI:-ray}"
name="$(basename "$study" .yaml)"
submission_id="${SUBMISSION_ID:-ser-ray-${name}-$(date +%Y%m%d-%H%M%S)}"

cd "$repo"
exec "$ray_cli" job submit \
  --address "${RAY_ADDRESS:-http://127.0.0.1:8265}" \
  --submission-id "$submission_id" \
  --working-dir . \
  --runtime-env cluster/runtime_env.yaml \
  -- python -m ser_ray search "$study" --out "$out" "$@"
