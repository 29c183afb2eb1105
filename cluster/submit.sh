#!/usr/bin/env bash
# Submit a study to a running Ray cluster as a Ray job and stream its log until it ends.
#
#   cluster/submit.sh STUDY.yaml OUT_DIR [more `ser-ray search` flags, e.g. --cache DIR
#                                         or --set budget.epochs=1 for a smoke run]
#   cluster/submit.sh search_spaces/demo.yaml /shared/ser-ray/demo \
#       --cache /shared/ser-ray/feature_cache \
#       --set storage_path=s3://my-bucket/ser-ray      # or gs://my-bucket/ser-ray
#
# OUT_DIR (ledger, optuna.db, progress.md, report, best model) must be a POSIX directory every
# node mounts (NFS, EFS, Filestore, a ReadWriteMany claim): SQLite needs file locking, so not an
# object-store mount; so must the feature cache (--cache) and the corpus. Trial results and
# checkpoints go to the study's `storage_path` when it is set (a local directory or s3://, gs://,
# file:// URI), under STORAGE/<study name>/.
#
# The job runs in a copy of this repository under /tmp/ray/session_*/runtime_resources, so this
# script makes OUT_DIR and --cache absolute (relative to where you run it) and passes
# --paths-relative-to with the folder you named the study in: the study's relative paths (corpus
# root, cache_dir, storage_path) mean that folder, not the job's copy of it. On a remote cluster
# those paths must exist on the nodes, so name them absolute, e.g. under /shared.
# RAY_ADDRESS picks the cluster (default: the local head's dashboard, http://127.0.0.1:8265;
# `ray dashboard CLUSTER.yaml` or `kubectl port-forward` bring a remote one there);
# SUBMISSION_ID names the job (default: ser-ray-<study>-<time>).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: cluster/submit.sh STUDY.yaml OUT_DIR [ser-ray search flags]" >&2
  exit 2
fi

# An absolute path for PATH as named from the current directory (~ is this machine's home).
absolute() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    "~") printf '%s\n' "$HOME" ;;
    "~/"*) printf '%s\n' "$HOME/${1#\~/}" ;;
    *) printf '%s\n' "$(pwd)/$1" ;;
  esac
}

study=$1
out="$(absolute "$2")"
shift 2
if [[ ! -f "$study" ]]; then
  echo "cluster/submit.sh: no study file $study" >&2
  exit 2
fi
# The folder of the study as named (symbolic links kept), for its relative paths.
study_folder="$(cd "$(dirname "$study")" && pwd)"

flags=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cache)
      if [[ $# -lt 2 ]]; then
        echo "cluster/submit.sh: --cache needs a folder" >&2
        exit 2
      fi
      flags+=(--cache "$(absolute "$2")")
      shift 2
      ;;
    --cache=*)
      flags+=("--cache=$(absolute "${1#--cache=}")")
      shift
      ;;
    --set)  # its value is never a flag of ours, even if it looks like one
      flags+=("$1")
      if [[ $# -ge 2 ]]; then
        flags+=("$2")
        shift
      fi
      shift
      ;;
    *)
      flags+=("$1")
      shift
      ;;
  esac
done

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
# --paths-relative-to comes before the user's flags, so that one given there wins.
exec "$ray_cli" job submit \
  --address "${RAY_ADDRESS:-http://127.0.0.1:8265}" \
  --submission-id "$submission_id" \
  --working-dir . \
  --runtime-env cluster/runtime_env.yaml \
  -- python -m ser_ray search "$study" --out "$out" --paths-relative-to "$study_folder" \
  ${flags[@]+"${flags[@]}"}
