"""The local SLURM (scripts/slurm_local.sh, fixture `slurm_cluster`) runs batch jobs, accounts for them in sacct,
and runs submitit's SlurmExecutor jobs; and the CI gate counts a skipped SLURM test as a failure."""
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_sbatch_job_completes_and_sacct_lists_it(slurm_cluster, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\necho \"hello from job $SLURM_JOB_ID on $SLURM_JOB_PARTITION\"\n")
    p = subprocess.run(["sbatch", "--parsable", "--job-name=lth-test-sbatch", "--time=1", "--ntasks=1",
                        f"--output={tmp_path}/out-%j.txt", str(script)],
                       capture_output=True, text=True, timeout=60, check=True)
    job_id = p.stdout.strip().split(";")[0]
    assert slurm_cluster.wait_job(job_id, timeout=120) == "COMPLETED"
    out = (tmp_path / f"out-{job_id}.txt").read_text()
    assert out == f"hello from job {job_id} on {slurm_cluster.partition}\n"


def test_submitit_slurm_executor_returns_the_result(slurm_cluster, tmp_path):
    import submitit

    executor = submitit.SlurmExecutor(folder=tmp_path / "%j", max_num_timeout=1)
    executor.update_parameters(time=1, job_name="lth-test-submitit", signal_delay_s=20, cpus_per_task=1)
    # a builtin, pickled by reference: the job's python needs nothing of this test module
    job = executor.submit(os.getenv, "SLURM_JOB_ID")
    assert job.result() == job.job_id
    assert slurm_cluster.wait_job(job.job_id, timeout=60) == "COMPLETED"


def test_ci_gate_counts_a_skipped_slurm_test_as_a_failure(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text(
        (HERE / "ci_gate.py").read_text()
        + "\n@pytest.fixture\ndef slurm_cluster():\n    pytest.skip('no local SLURM')\n")
    (tests / "test_jobs.py").write_text(
        "import pytest\n"
        "def test_submits(slurm_cluster):\n    pass\n"
        "def test_other():\n    pytest.skip('not a SLURM test')\n")

    def pytest_run(required):
        env = dict(os.environ, LTH_REQUIRE_FRAMEWORK_TESTS=required)
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                               str(tmp_path), "tests"], capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=300)

    assert pytest_run("flare").returncode == 0
    p = pytest_run("flare,slurm")
    assert p.returncode == 1, p.stdout
    assert "SKIPPED (counts as a failure) tests/test_jobs.py::test_submits: Skipped: no local SLURM" in p.stdout
    assert "test_other" not in p.stdout.split("must run")[1]
