"""`snakemake --profile slurm` on a real one-node SLURM cluster.

The cluster comes from tests/integration/slurm_cluster.sh (`.ci/run` starts it before the
test suite and stops it afterwards): partition cnnatlas-test, one node with two fake GPUs.
The tiny e2e config runs with extraction sharded over two GPU jobs (one checkpoint), through
the repository's slurm profile plus a test-only profile (status polling by squeue, short
first poll); its outputs must be the bytes a local, unsharded run writes.
"""

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, run_snakemake, snakemake_cmd
from tests.e2e.conftest import write_tiny_config

pytestmark = pytest.mark.integration

PARTITION = "cnnatlas-test"
CKPTS = ("late",)  # one checkpoint keeps the test short: two shards, one per GPU
LAYERS = ("features.1.3", "fc1")
TARGETS = [
    f"results/tiny/{ckpt}/{name}"
    for ckpt in CKPTS
    for name in ("predictions.parquet", "features")
]
TEST_PROFILE = """\
# Test-only additions to profiles/slurm: poll job states with squeue (this cluster has no
# accounting database for sacct; MinJobAge=300 keeps finished jobs in squeue) and poll
# soon, as the jobs take seconds.
slurm-status-command: squeue
slurm-init-seconds-before-status-checks: 2
slurm-keep-successful-logs: true
jobs: 4
latency-wait: 10
"""


def cluster_up() -> str | None:
    """None if the test cluster answers, else why not."""
    if shutil.which("sbatch") is None:
        return "sbatch not found (apt-get install slurmctld slurmd slurm-client munge)"
    ping = subprocess.run(
        ["scontrol", "ping"], capture_output=True, text=True, timeout=30
    )
    if "UP" not in ping.stdout:
        return (
            f"no SLURM controller answers: {ping.stdout.strip()} {ping.stderr.strip()}"
        )
    parts = subprocess.run(
        ["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=30
    ).stdout.split()
    if PARTITION not in parts:
        return f"partition {PARTITION} not found (partitions: {parts})"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = cluster_up()
    if reason:
        how = "start one with `tests/integration/slurm_cluster.sh start` (as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/run must {how}")
        pytest.skip(f"{reason}; {how}")


def digests(results: Path) -> dict[str, str]:
    files = [
        f"tiny/{ckpt}/{name}"
        for ckpt in CKPTS
        for name in [
            "predictions.parquet",
            *(f"features/{layer}.npy" for layer in LAYERS),
        ]
    ]
    return {f: hashlib.sha256((results / f).read_bytes()).hexdigest() for f in files}


def scontrol_job(jobid: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "-o", "show", "job", jobid],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def slurm_command(work: Path, profile: Path) -> list[str]:
    """snakemake with the repository's slurm profile, then the test-only one."""
    return snakemake_cmd(
        work, "--profile", "slurm", "--profile", str(profile), *TARGETS
    )


def test_profile_slurm_runs_gpu_jobs_and_writes_the_local_bytes(slurm, tmp_path):
    work = write_tiny_config(tmp_path / "cluster")
    config = work / "config.yaml"
    config.write_text(
        config.read_text().replace("\nextract:\n", "\nextract:\n  shards: 2\n")
    )
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(TEST_PROFILE)
    # the test node has 4 CPUs: two shard jobs of 2 CPUs each run side by side
    env = {
        **os.environ,
        "CNNATLAS_SLURM_PARTITION": PARTITION,
        "CNNATLAS_SLURM_GPU_CPUS": "2",
    }
    out = tmp_path / "snakemake.out"
    with out.open("w") as sink:
        # from the repository root, where `--profile slurm` resolves
        proc = subprocess.Popen(
            slurm_command(work, profile), cwd=REPO, env=env, stdout=sink, stderr=sink
        )
        try:
            # the local run to compare with, while the cluster run waits on SLURM
            local = write_tiny_config(tmp_path / "local")
            run_snakemake(local, *TARGETS)
            # status problems hang rather than fail: a timeout turns them into a failure
            returncode = proc.wait(timeout=420)
        finally:
            proc.kill()
            subprocess.run(["scancel", "--partition", PARTITION], check=False)
    log = out.read_text()
    assert returncode == 0, log[-6000:]

    assert digests(work / "results") == digests(local / "results")

    jobs = dict(re.findall(r"SLURM jobid (\d+) \(log: \S*/rule_(\w+?)/", log))
    assert sorted(jobs.values()).count("extract_shard") == 2, log[-3000:]
    assert "build_manifest" in jobs.values()
    # the gathers are local rules: no SLURM job, no GPU held for a copy
    assert "extract_features" not in jobs.values()
    for jobid, rule in jobs.items():
        job = scontrol_job(jobid)
        assert job["JobState"] == "COMPLETED"
        assert job["Partition"] == PARTITION
        if rule == "extract_shard":
            assert job["TresPerJob"] == "gres:gpu:1", job
            assert job["NumCPUs"] == "2", job
        else:
            assert "gpu" not in job.get("TresPerJob", ""), job
    # slurmd gave each shard job one of the node's GPUs; torch (no driver) used the CPU
    for ckpt in CKPTS:
        for shard in range(2):
            text = (
                work / f"results/logs/extract_shard/tiny/{ckpt}/{shard}-of-2.log"
            ).read_text()
            assert re.search(r"given GPU\(s\) CUDA_VISIBLE_DEVICES=[01] ", text), text


# ---- the plan `--profile slurm` makes; a dry run needs no cluster -------------------

GPU_RULES = {
    "train_demo_model",
    "extract_features",
    "extract_shard",
    "render_feature_maps",
    "visualize_filters",
    "render_saliency",
    "check_saliency",
}


def planned_jobs(stdout: str) -> list[dict]:
    """{rule, threads, resources} of every job in a dry run's listing."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", stdout):
        head = re.match(r"(local)?rule (\w+):", block.strip())
        if not head:
            continue
        threads = re.search(r"^\s+threads: (\d+)", block, re.M)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        jobs.append(
            {
                "rule": head.group(2),
                "local": bool(head.group(1)),
                "threads": int(threads.group(1)) if threads else 1,
                "resources": dict(re.findall(r"(\w+)=([^,]*)", res.group(1)))
                if res
                else {},
            }
        )
    return jobs


def dry_run(tmp_path: Path, *args: str, shards: int = 1, **env: str) -> list[dict]:
    """The demo's plan in a fresh folder (config.yaml of the repository)."""
    work = tmp_path / f"work{shards}"
    work.mkdir(exist_ok=True)
    config = (REPO / "config.yaml").read_text()
    assert "  shards: 1 " in config
    (work / "config.yaml").write_text(
        config.replace("  shards: 1 ", f"  shards: {shards} ")
    )
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CNNATLAS_"))
    }
    proc = subprocess.run(
        snakemake_cmd(work, "-n", *args),
        cwd=REPO,  # where `--profile slurm` resolves
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    jobs = planned_jobs(proc.stdout)
    assert len(jobs) > 50, proc.stdout[-3000:]
    return jobs


def test_profile_slurm_plans_gpu_jobs_with_a_gpu_and_8_cpus(tmp_path):
    jobs = dry_run(tmp_path, "--profile", "slurm")
    rules = {j["rule"] for j in jobs}
    assert GPU_RULES - {"extract_shard"} <= rules
    for job in jobs:
        res = job["resources"]
        if job["rule"] in GPU_RULES:
            assert res["gpu"] == "1" and int(res["cpus_per_task"]) >= 8, job
        else:
            assert "gpu" not in res and "cpus_per_task" not in res, job


def test_gpu_jobs_take_every_cpu_slurm_gives_them(tmp_path):
    """CNNATLAS_SLURM_GPU_CPUS sets --cpus-per-task; inside the job (SLURM_CPUS_PER_TASK
    set) the GPU rules' threads, hence DataLoader workers, are that many."""
    jobs = dry_run(
        tmp_path, "--profile", "slurm", "--cores", "64", shards=2,
        CNNATLAS_SLURM_GPU_CPUS="12", SLURM_CPUS_PER_TASK="12",
    )  # fmt: skip
    shards = [j for j in jobs if j["rule"] == "extract_shard"]
    assert len(shards) == 2 * 3  # two per demo checkpoint
    for job in jobs:
        if job["rule"] in GPU_RULES and not job["local"]:
            assert job["threads"] == 12, job
            assert job["resources"]["cpus_per_task"] == "12", job


def test_local_runs_use_the_cores_they_are_given(tmp_path):
    """Outside SLURM the extraction and the explanations use every core --cores grants,
    never more than the machine's CPUs; the demo's training keeps its 2 threads."""
    cpus = os.cpu_count()
    for cores in (8, 1):
        jobs = dry_run(tmp_path, "--cores", str(cores))
        every = min(cpus, cores)
        expected = {
            "train_demo_model": min(2, cores),
            "extract_features": every,
            "render_saliency": every,
            "check_saliency": every,
            "visualize_filters": every,
        }
        seen = set()
        for job in jobs:
            if job["rule"] in expected:
                assert job["threads"] == expected[job["rule"]], (cores, job)
                seen.add(job["rule"])
        assert seen == set(expected), seen
