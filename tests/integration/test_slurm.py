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

from tests.conftest import REPO, SNAKEMAKE, run_snakemake
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
    return [
        *SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(work),
        "--profile",
        "slurm",
        "--profile",
        str(profile),
        *TARGETS,
    ]


def test_profile_slurm_runs_gpu_jobs_and_writes_the_local_bytes(slurm, tmp_path):
    work = write_tiny_config(tmp_path / "cluster")
    config = work / "config.yaml"
    config.write_text(
        config.read_text().replace("\nextract:\n", "\nextract:\n  shards: 2\n")
    )
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(TEST_PROFILE)
    env = {**os.environ, "CNNATLAS_SLURM_PARTITION": PARTITION}
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
        else:
            assert "gpu" not in job.get("TresPerJob", ""), job
    # slurmd gave each shard job one of the node's GPUs; torch (no driver) used the CPU
    for ckpt in CKPTS:
        for shard in range(2):
            text = (
                work / f"results/logs/extract_shard/tiny/{ckpt}/{shard}-of-2.log"
            ).read_text()
            assert re.search(r"given GPU\(s\) CUDA_VISIBLE_DEVICES=[01] ", text), text
