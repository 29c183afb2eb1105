"""The cluster configs as the tools that read them see them, without a cloud account or a Ray
cluster: Ray's own cluster-launcher loader and schema for the AWS and GCP configs, KubeRay's CRD
schemas (vendored in tests/data/kuberay) and Ray's KubeRay autoscaler for the manifests, the
Dockerfile against the installed Ray, and cluster/submit.sh against a stand-in `ray` CLI.

What only a cloud account can show is not checked here: that the images boot with a working
NVIDIA driver, that the NFS shares mount, that pods get GPUs, that the credentials reach the
buckets."""

from __future__ import annotations

import copy
import fnmatch
import gzip
import json
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import (
    _derive_autoscaling_config_from_ray_cr,
)
from ray.autoscaler._private.kuberay.utils import parse_quantity
from ray.autoscaler._private.util import fillout_defaults, prepare_config, validate_config

from ser_ray.cli import build_parser, parse_settings
from ser_ray.study.schema import load_study

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
CRDS = Path(__file__).parent / "data" / "kuberay"
LAUNCHER_CONFIGS = ["ray-cluster-aws.yaml", "ray-cluster-gcp.yaml"]
KUBERAY_MANIFESTS = ["kuberay-storage.yaml", "kuberay-raycluster.yaml", "kuberay-rayjob.yaml"]
# The machines the launcher configs name: vCPUs, memory in bytes (AWS: GiB; GCP: GB) and the
# GPUs that come with the machine type (GCP's N1 machines get theirs from guestAccelerators).
MACHINES = {"m6i.2xlarge": (8, 32 * 2**30, 0), "g5.2xlarge": (8, 32 * 2**30, 1),
            "n2-standard-8": (8, 32 * 10**9, 0), "n1-standard-8": (8, 30 * 10**9, 0)}
# Tokens the configs use for what only the user knows; each file's header says what they mean.
PLACEHOLDERS = ["REGISTRY", "DLAMI_ID", "EFS_ID", "PROJECT_ID", "FILESTORE_IP", "FILE_SHARE",
                "BUCKET", "ACCOUNT_ID"]




def docker_image() -> str:
    """The image name the Dockerfile's header tells the user to build and push."""
    match = re.search(r"docker build -f cluster/Dockerfile -t (\S+) \.",
                      (CLUSTER / "Dockerfile").read_text())
    assert match, "cluster/Dockerfile's header gives no `docker build ... -t IMAGE .` command"
    return match.group(1)


def load_launcher(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def prepared(name: str) -> dict:
    """What `ray up` builds from the file before it talks to the cloud (`_bootstrap_config`:
    `prepare_config`, i.e. `fillout_defaults` with the provider's defaults.yaml,
    `merge_setup_commands`, `validate_docker_config`, `fill_node_type_min_max_workers`), then
    `validate_config` (Ray's ray-schema.json and its cross-field checks). The provider steps
    after it are left out: `fillout_available_node_types_resources` needs boto3 and AWS
    credentials (it calls EC2's DescribeInstanceTypes; on GCP it only fills TPUs and needs
    google-api-python-client), and `bootstrap_config` creates IAM roles, key pairs and
    firewall rules in the account. Every node type declares its resources, so no autofill is
    needed."""
    config = prepare_config(load_launcher(name))
    validate_config(config)
    return config


def gpu_node_types(config: dict) -> dict[str, dict]:
    return {name: node for name, node in config["available_node_types"].items()
            if node["resources"].get("GPU", 0) > 0}


def worker_node_types(config: dict) -> dict[str, dict]:
    return {name: node for name, node in config["available_node_types"].items()
            if name != config["head_node_type"]}


def node_commands(config: dict, name: str, key: str) -> list[str]:
    """The commands of one kind a node type runs: its own list if it has one, else the
    cluster's (after prepare_config merged setup_commands into head/worker_setup_commands), as
    the autoscaler's `_get_node_type_specific_fields` and `ray up` pick them."""
    node = config["available_node_types"][name]
    if name == config["head_node_type"]:
        return config[key.replace("worker_", "head_")]
    return node.get(key, config[key])


def every_command(config: dict) -> list[str]:
    keys = ["initialization_commands", "setup_commands", "head_setup_commands",
            "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands"]
    commands = [command for key in keys for command in config[key]]
    for node in config["available_node_types"].values():
        commands += node.get("initialization_commands", []) + node.get(
            "worker_setup_commands", [])
    return commands


def shipped_studies() -> list[Path]:
    return sorted(path for path in (REPO / "search_spaces").rglob("*.yaml")
                  if "resources" in (yaml.safe_load(path.read_text()) or {}))


# ---------------------------------------------------------------- cluster launcher (AWS, GCP)


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_passes_rays_loader_and_validation(name: str) -> None:
    config = prepared(name)
    assert config["head_node_type"] in config["available_node_types"]
    # Ray's defaults.yaml fills only what the file leaves out (`defaults.update(config)`): every
    # command list is the file's own, none of the defaults' `pip install` lines survive.
    raw = load_launcher(name)
    filled = fillout_defaults(raw)
    for key in ["initialization_commands", "setup_commands", "head_setup_commands",
                "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands"]:
        assert key in raw, f"{name} leaves {key} to Ray's defaults"
        assert filled[key] == raw[key]


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_no_node_installs_packages_or_ignores_a_failure(name: str) -> None:
    config = prepared(name)
    assert "docker" in config and config["docker"]["image"], \
        "without docker, setup commands would run in the host's Python"
    for command in every_command(config):
        assert not re.search(r"\bpip3?\b|\bconda\b|\buv\b", command), \
            f"{name}: {command!r} installs into a Python (the image has everything)"
        assert not re.search(r"\|\|\s*(true\b|:(\s|\)|$))|;\s*true\b|set \+e", command), \
            f"{name}: {command!r} hides a failure"


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_every_node_type_declares_what_the_autoscaler_plans_with(name: str) -> None:
    config = prepared(name)
    for node_name, node in config["available_node_types"].items():
        resources, node_config = node["resources"], node["node_config"]
        machine = node_config.get("InstanceType") or node_config.get("machineType")
        cpus, memory, gpus = MACHINES[machine]
        assert 0 < resources.get("CPU", 0) <= cpus, f"{node_name}: CPU {resources.get('CPU')}"
        # Trials request memory: the autoscaler must know it, and it must leave the node room
        # for the object store (30 % of free memory) and Ray's own processes.
        assert 0 < resources.get("memory", 0) <= 0.6 * memory, f"{node_name}: memory"
        # Every GPU the node has is advertised (GCP does not autodetect them), and no more.
        gpus += sum(accelerator["acceleratorCount"]
                    for accelerator in node_config.get("guestAccelerators", []))
        assert resources.get("GPU", 0) == gpus, \
            f"{node_name}: advertises {resources.get('GPU', 0)} GPUs, has {gpus}"
    workers = worker_node_types(config)
    assert workers and all(node["min_workers"] == 0 and node["max_workers"] >= 1
                           for node in workers.values())
    assert set(gpu_node_types(config)) <= set(workers)


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_a_trial_of_every_shipped_study_fits_a_node_type(name: str) -> None:
    node_types = prepared(name)["available_node_types"].values()
    assert shipped_studies()
    for study in shipped_studies():
        wanted = yaml.safe_load(study.read_text())["resources"]
        cpus = wanted.get("cpus", 1) * wanted.get("workers", 1)
        assert any(node["resources"].get("CPU", 0) >= cpus
                   and node["resources"].get("GPU", 0) >= wanted.get("gpus", 0)
                   for node in node_types), f"no node type holds a trial of {study} ({wanted})"


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_gpu_workers_check_their_driver_and_see_the_gpu_in_the_container(name: str) -> None:
    config = prepared(name)
    assert gpu_node_types(config)
    for node_name, node in gpu_node_types(config).items():
        docker = {**config["docker"], **node.get("docker", {})}  # as the autoscaler merges them
        options = docker.get("run_options", []) + docker.get("worker_run_options", [])
        assert "--gpus all" in options, node_name
        assert any("nvidia-smi" in command
                   for command in node_commands(config, node_name, "initialization_commands"))
        assert any("torch.cuda.is_available()" in command
                   for command in node_commands(config, node_name, "worker_setup_commands"))
        node_config = node["node_config"]
        if config["provider"]["type"] == "gcp":
            metadata = {item["key"]: item["value"] for item in node_config["metadata"]["items"]}
            assert metadata["install-nvidia-driver"] == "True"
            assert node_config["scheduling"]["onHostMaintenance"] == "TERMINATE"
    # The CPU head's `docker run` would fail with it.
    head_options = config["docker"].get("run_options", []) + config["docker"].get(
        "head_run_options", [])
    assert "--gpus all" not in head_options


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_workers_carry_credentials_for_the_storage_path(name: str) -> None:
    config = prepared(name)
    for node_name, node in config["available_node_types"].items():
        node_config = node["node_config"]
        if config["provider"]["type"] == "aws":
            # The head needs one too: one that lets it launch workers with it (iam:PassRole).
            assert node_config.get("IamInstanceProfile"), node_name
        elif node_name != config["head_node_type"]:  # `ray up` gives the head its account
            accounts = node_config.get("serviceAccounts", [])
            assert accounts and accounts[0]["email"].startswith("ray-autoscaler-sa-v1@"), \
                node_name
            assert {"https://www.googleapis.com/auth/cloud-platform",
                    "https://www.googleapis.com/auth/devstorage.read_write"} \
                & set(accounts[0]["scopes"]), node_name


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_every_node_mounts_the_share_or_fails(name: str) -> None:
    config = prepared(name)
    for node_name in config["available_node_types"]:
        commands = node_commands(config, node_name, "initialization_commands")
        mounts = [index for index, command in enumerate(commands)
                  if re.search(r"\bmount\b.* /shared$", command)]
        assert len(mounts) == 1, f"{node_name}: {commands}"
        assert commands[mounts[0]].startswith("mountpoint -q /shared || sudo mount ")
        assert "mountpoint /shared" in commands[mounts[0] + 1:], \
            f"{node_name}: nothing checks that /shared is mounted after mounting it"
        start = node_commands(config, node_name, "worker_start_ray_commands")
        check = "stat --file-system --format=%T /shared | grep -qx nfs"
        assert check in start and start.index(check) < next(
            index for index, command in enumerate(start) if "ray start" in command), node_name
    assert "-v /shared:/shared" in config["docker"]["run_options"]


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_a_failed_mount_fails_its_command(name: str, tmp_path: Path) -> None:
    """Ray stops a node's setup at the first command that exits non-zero (updater.py raises
    "Initialization command failed." / "Start command failed."). Run the mount, the check
    after it and the start-time check with stand-ins for `mount` that fail, a `mountpoint` that
    sees no mount and a `stat` that sees a local disk: each must exit non-zero."""
    config = prepared(name)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for tool, body in {"sudo": 'exec "$@"', "mount": "exit 32", "mountpoint": "exit 1",
                       "stat": "echo ext2/ext3"}.items():
        (stubs / tool).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / tool).chmod(0o755)
    environment = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"}
    commands = set()  # every node type's (the GPU workers' own lists included)
    for node_name in config["available_node_types"]:
        commands |= {command for command in node_commands(
            config, node_name, "initialization_commands") if command.startswith("mountpoint")}
        commands |= {command for command in node_commands(
            config, node_name, "worker_start_ray_commands") if command.startswith("stat ")}
    assert len(commands) == 3, commands
    for command in sorted(commands):
        result = subprocess.run(["bash", "-c", command], env=environment, capture_output=True)
        assert result.returncode != 0, f"{command!r} succeeds although /shared is not mounted"


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_nothing_copies_the_checkout_to_the_nodes(name: str) -> None:
    # The image holds ser-ray and jobs ship the checkout (cluster/runtime_env.yaml's excludes):
    # `file_mounts: .` would rsync the 2+ GB .venv and every run to each node.
    config = prepared(name)
    assert config["file_mounts"] == {} and config["cluster_synced_files"] == []
    # Should a mount be added, rsync leaves these out.
    assert {"**/.venv", "**/runs", "**/.git"} <= set(config["rsync_exclude"])


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_nodes_run_the_dockerfiles_image(name: str) -> None:
    docker = prepared(name)["docker"]
    assert docker["image"] == docker_image()
    assert docker.get("head_image", docker["image"]) == docker.get(
        "worker_image", docker["image"]) == docker_image()
    for node in prepared(name)["available_node_types"].values():
        assert node.get("docker", {}).get("worker_image", docker_image()) == docker_image()


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS + KUBERAY_MANIFESTS)
def test_every_placeholder_is_explained_in_the_header(name: str) -> None:
    text = (CLUSTER / name).read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    body = "\n".join(line.split(" #")[0] for line in text.splitlines()
                     if not line.lstrip().startswith("#"))
    for token in PLACEHOLDERS:
        if re.search(rf"\b{token}\b", body):
            assert re.search(rf"\b{token}\b", header), f"{name} uses {token} without saying"


# ------------------------------------------------------------------------ image and uploads


def test_the_dockerfile_builds_on_the_ray_image_of_this_ray_and_python() -> None:
    text = (CLUSTER / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    assert bases == [f"rayproject/ray:{ray.__version__}-{python}-gpu"]
    assert f"assert ray.__version__ == '{ray.__version__}'" in text
    # The repository is installed with its dependencies, Ray held at the image's version.
    assert re.search(r"pip install .*--constraint \S+ /app\b", text)
    assert re.search(r"^COPY .* \. /app$", text, flags=re.MULTILINE)


def dockerignored(name: str) -> bool:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    return any(fnmatch.fnmatch(name, pattern.removeprefix("**/")) for pattern in patterns)


def test_the_build_context_leaves_out_venv_runs_and_git() -> None:
    for name in [".venv", "runs", ".git", "ser_ray.egg-info", "__pycache__"]:
        assert dockerignored(name), name
    for name in ["ser_ray", "search_spaces", "pyproject.toml", "README.md"]:  # the build reads
        assert not dockerignored(name), name
    excludes = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())["excludes"]
    assert {".venv/", "runs/", ".git/"} <= set(excludes)


# --------------------------------------------------------------------------------- KubeRay


@cache
def crd_schema(kind: str) -> dict:
    with gzip.open(CRDS / f"{kind.lower()}-v1.schema.json.gz") as file:
        return json.load(file)


def kuberay_documents() -> list[tuple[str, dict]]:
    return [(name, document) for name in KUBERAY_MANIFESTS
            for document in yaml.safe_load_all((CLUSTER / name).read_text()) if document]


def document(kind: str, file: str | None = None) -> dict:
    found = [doc for name, doc in kuberay_documents()
             if doc["kind"] == kind and (file is None or name == file)]
    assert len(found) == 1, f"{len(found)} {kind} documents"
    return found[0]


def undefined_fields(value: object, schema: dict, path: str = "") -> list[str]:
    """Fields the schema does not define, at any depth. KubeRay's CRD schemas are structural
    but leave additionalProperties unset, so JSON Schema alone accepts any field; the API
    server drops such fields (or, under kubectl's strict field validation, refuses them)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict):
        properties, additional = schema.get("properties"), schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                found += undefined_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(additional, dict):
                found += undefined_fields(item, additional, f"{path}.{key}")
            elif properties is not None or additional is False:
                found.append(f"{path}.{key}")
            # else an object the schema leaves open (a resource's metadata: the API server's)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += undefined_fields(item, schema["items"], f"{path}[{index}]")
    return found


METADATA_FIELDS = {"name", "namespace", "labels", "annotations"}


def schema_problems(doc: dict) -> list[str]:
    """What KubeRay's CRDs (RayCluster, RayJob) and, for the claim, the PersistentVolumeClaim
    spec embedded in them (a volume's ephemeral.volumeClaimTemplate.spec) say is wrong with a
    document: JSON Schema errors (types, enums, patterns, required fields; `x-kubernetes-*`
    keys are annotations JSON Schema ignores; CEL `x-kubernetes-validations` rules are not
    evaluated) and fields the schema does not define."""
    validator = jsonschema.Draft7Validator
    problems = [f"metadata.{key}" for key in set(doc.get("metadata", {})) - METADATA_FIELDS]
    if doc["kind"] in ("RayCluster", "RayJob"):
        assert doc["apiVersion"] == "ray.io/v1"
        schema, value = crd_schema(doc["kind"]), doc
    elif doc["kind"] == "PersistentVolumeClaim":
        assert doc["apiVersion"] == "v1"
        problems += sorted(set(doc) - {"apiVersion", "kind", "metadata", "spec"})
        volume = crd_schema("RayCluster")["properties"]["spec"]["properties"]["headGroupSpec"][
            "properties"]["template"]["properties"]["spec"]["properties"]["volumes"]["items"]
        schema = volume["properties"]["ephemeral"]["properties"]["volumeClaimTemplate"][
            "properties"]["spec"]
        value = doc["spec"]
    else:
        assert (doc["apiVersion"], doc["kind"]) == ("v1", "ServiceAccount")
        return problems + sorted(set(doc) - {"apiVersion", "kind", "metadata", "secrets",
                                             "imagePullSecrets", "automountServiceAccountToken"})
    problems += [f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
                 for error in validator(schema).iter_errors(value)]
    return problems + undefined_fields(value, schema)


@pytest.mark.parametrize("name,doc", kuberay_documents(),
                         ids=lambda item: item if isinstance(item, str) else item["kind"])
def test_kuberay_manifests_match_kuberays_crds(name: str, doc: dict) -> None:
    assert schema_problems(doc) == [], name


@pytest.mark.parametrize("kind,edit,problem", [
    ("RayCluster", lambda d: d["spec"]["workerGroupSpecs"][0].update(maxReplica=8),
     ".spec.workerGroupSpecs[0].maxReplica"),
    ("RayCluster", lambda d: d["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
     .update(resource={}), ".spec.headGroupSpec.template.spec.containers[0].resource"),
    ("RayCluster", lambda d: d["spec"].update(enableInTreeAutoscaling="yes"),
     "enableInTreeAutoscaling: 'yes' is not of type 'boolean'"),
    ("RayCluster", lambda d: d["spec"]["autoscalerOptions"].update(upscalingMode="Fast"),
     "autoscalerOptions.upscalingMode: 'Fast' is not one of"),
    ("RayJob", lambda d: d["spec"].update(entryPoint="python"), ".spec.entryPoint"),
    ("RayJob", lambda d: d["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].pop("maxReplicas"),
     "'maxReplicas' is a required property"),
    ("PersistentVolumeClaim", lambda d: d["spec"].update(accesModes=["ReadWriteMany"]),
     ".accesModes"),
    ("ServiceAccount", lambda d: d.update(annotations={}), "annotations"),
])
def test_a_misspelt_or_mistyped_field_fails_validation(kind, edit, problem) -> None:
    doc = copy.deepcopy(document(kind))
    edit(doc)
    problems = schema_problems(doc)
    assert any(problem in found for found in problems), problems


def pod_specs(cluster_spec: dict) -> dict[str, tuple[dict, dict]]:
    groups = {"head": cluster_spec["headGroupSpec"]} | {
        group["groupName"]: group for group in cluster_spec["workerGroupSpecs"]}
    return {name: (group, group["template"]["spec"]) for name, group in groups.items()}


def test_the_raycluster_autoscales_gpu_worker_pods() -> None:
    cluster = document("RayCluster")
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["rayVersion"] == ray.__version__
    gpu_groups = []
    for name, (group, pod) in pod_specs(spec).items():
        resources = pod["containers"][0]["resources"]
        assert resources["requests"] == resources["limits"], name
        if "nvidia.com/gpu" in resources["limits"]:
            gpu_groups.append(name)
            assert group["minReplicas"] == 0 and group["maxReplicas"] >= 1, name
            assert group.get("replicas", 0) == 0
    assert gpu_groups
    # What KubeRay's autoscaler sidecar derives from the RayCluster, and Ray's own checks on it.
    autoscaling = _derive_autoscaling_config_from_ray_cr(
        {**cluster, "metadata": {**cluster["metadata"], "namespace": "default"}})
    validate_config(autoscaling)
    head = autoscaling["available_node_types"][autoscaling["head_node_type"]]
    assert head["resources"].get("CPU") == 0  # trials and featurization run on the workers
    for name in gpu_groups:
        resources = autoscaling["available_node_types"][name]["resources"]
        assert resources["GPU"] >= 1 and resources["CPU"] >= 1 and resources["memory"] > 0
        for study in shipped_studies():
            wanted = yaml.safe_load(study.read_text())["resources"]
            assert resources["CPU"] >= wanted.get("cpus", 1) * wanted.get("workers", 1)
            assert resources["GPU"] >= wanted.get("gpus", 0)


def test_every_ray_pod_mounts_the_shared_claim_and_an_object_store_shm() -> None:
    claim, account = document("PersistentVolumeClaim"), document("ServiceAccount")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    for _, doc in kuberay_documents():
        if doc["kind"] not in ("RayCluster", "RayJob"):
            continue
        spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
        for name, (group, pod) in pod_specs(spec).items():
            assert pod["serviceAccountName"] == account["metadata"]["name"], name
            volumes = {volume["name"]: volume for volume in pod["volumes"]}
            for container in pod.get("initContainers", []) + pod["containers"]:
                assert container["image"] == docker_image(), (name, container["name"])
            container = pod["containers"][0]
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            shared = volumes[mounts["/shared"]]
            assert shared["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
            shm = volumes[mounts["/dev/shm"]]["emptyDir"]
            assert shm["medium"] == "Memory"
            store = int(group["rayStartParams"]["object-store-memory"])
            limit = parse_quantity(container["resources"]["limits"]["memory"])
            assert store < parse_quantity(shm["sizeLimit"]) <= limit, name
            memory = int(group["rayStartParams"].get("memory", 0))
            assert memory + store < limit, f"{name}: Ray's memory and the object store overfill"


def test_the_rayjob_runs_on_the_rayclusters_spec() -> None:
    assert document("RayJob")["spec"]["rayClusterSpec"] == document("RayCluster")["spec"]


def test_the_rayjob_entrypoint_is_a_search_with_every_path_on_the_share() -> None:
    job = document("RayJob")["spec"]
    words = shlex.split(job["entrypoint"])
    assert words[:4] == ["python", "-m", "ser_ray", "search"]
    args = build_parser().parse_args(words[3:])
    for path in [args.out, args.cache, args.paths_relative_to]:
        assert path.is_absolute() and path.parts[1] == "shared", path
    # The study is the one the image holds (/app is this repository, less .dockerignore's).
    assert args.study.parts[1] == "app"
    study_file = REPO.joinpath(*args.study.parts[2:])
    assert study_file.is_file() and not dockerignored(args.study.parts[2])
    study = load_study(study_file, parse_settings(args.set), args.paths_relative_to)
    assert study.corpus.root is not None and study.corpus.root.parts[1] == "shared"
    environment = yaml.safe_load(job["runtimeEnvYAML"])
    assert "working_dir" not in environment  # the image has ser-ray installed
    assert job["shutdownAfterJobFinishes"] is True


# ------------------------------------------------------------------------------- submit.sh


def submit(tmp_path: Path, cwd: Path, *args: str) -> list[str]:
    """Run cluster/submit.sh with a stand-in `ray` that records its arguments."""
    record = tmp_path / "ray-args"
    fake_ray = tmp_path / "ray"
    fake_ray.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(str(record))}\n')
    fake_ray.chmod(0o755)
    environment = {**os.environ, "RAY_CLI": str(fake_ray), "SUBMISSION_ID": "ser-ray-test"}
    result = subprocess.run([str(CLUSTER / "submit.sh"), *args], cwd=cwd, env=environment,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    words = record.read_text().splitlines()
    return words[words.index("--") + 1:]


def test_submit_makes_out_and_cache_absolute_and_names_the_studys_folder(
        tmp_path: Path) -> None:
    here = tmp_path / "work"
    here.mkdir()
    command = submit(tmp_path, here, str(REPO / "search_spaces" / "demo.yaml"), "out",
                     "--cache", "features", "--set", "budget.epochs=1", "--cache=more",
                     "--set", "--cache=kept", "--cache", "/abs/cache", "--cache=~/home-cache")
    assert command == [
        "python", "-m", "ser_ray", "search", "search_spaces/demo.yaml",
        "--out", f"{here}/out", "--paths-relative-to", str(REPO / "search_spaces"),
        "--cache", f"{here}/features", "--set", "budget.epochs=1", f"--cache={here}/more",
        "--set", "--cache=kept", "--cache", "/abs/cache", f"--cache={Path.home()}/home-cache"]


def test_submit_names_the_folder_as_the_user_named_the_study(tmp_path: Path) -> None:
    command = submit(tmp_path, REPO / "search_spaces", "eca_cnn/table_v.yaml", "/shared/out")
    assert command == ["python", "-m", "ser_ray", "search", "search_spaces/eca_cnn/table_v.yaml",
                       "--out", "/shared/out", "--paths-relative-to",
                       str(REPO / "search_spaces" / "eca_cnn")]
    parsed = build_parser().parse_args(command[3:])
    assert parsed.paths_relative_to == REPO / "search_spaces" / "eca_cnn"
