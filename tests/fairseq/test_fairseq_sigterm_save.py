"""SIGTERM from the real local SLURM while a round trains (what a preemption with PreemptMode=REQUEUE and
`scontrol requeue` send, KillWait before SIGKILL): the rank saves the round's checkpoint_last.pt at the next update,
exits, and the requeued job resumes from that very update."""
import os
import re
import subprocess
import time

from ..slurm_cluster import wait_until
from .helpers import BIN, COMMON, MT_MODEL, USER_DIR, env, metrics

ARGS = [*MT_MODEL, "--max-update", "20", "--save-interval-updates", "5", "--lottery-prune", "--lottery-rounds", "1"]


def _job(job):
    return subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30).stdout


def test_sigterm_mid_round_saves_and_the_requeued_job_resumes_there(slurm_cluster, mt_data, tmp_path):
    save, out = tmp_path / "run", tmp_path / "job.out"
    train = " ".join([str(BIN / "fairseq-train"), str(mt_data), "--save-dir", str(save), *COMMON, *ARGS,
                      "--user-dir", USER_DIR])
    e = env()
    e["PATH"] = f"{BIN}{os.pathsep}{e['PATH']}"
    job = subprocess.run(["sbatch", "--parsable", "--requeue", "--open-mode=append", "--ntasks=1", "--cpus-per-task=1",
                          "--time=15", f"--output={out}", "--wrap", f"srun {train}"],
                         env=e, capture_output=True, text=True, timeout=60, check=True).stdout.strip().split(";")[0]
    try:
        wait_until(lambda: list((save / "round_00").glob("checkpoint_*_5.pt")), 300,
                   lambda: f"job {job} to save update 5 ({out.read_text()[-3000:] if out.exists() else ''})")
        t0 = time.monotonic()
        subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
        wait_until(lambda: "Restarts=1 " in _job(job) and "JobState=PENDING" in _job(job), 120,
                   lambda: f"job {job} pending again ({_job(job)})")
        stopped_s = time.monotonic() - t0
        text = out.read_text()
        saved = re.findall(r"\[lottery\] rank 0: SIGTERM; round 0: checkpoint_last.pt saved at update (\d+); "
                           r"exiting \(SLURM requeues or ends the job\)", text)
        assert len(saved) == 1, text[-4000:]
        subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], check=True, timeout=30)
        assert slurm_cluster.wait_job(job, timeout=600) == "COMPLETED", out.read_text()[-4000:]
        text = out.read_text()
        resumed = re.findall(r"Loaded checkpoint \S+round_00/checkpoint_last.pt \(epoch \d+ @ (\d+) updates\)", text)
        assert resumed == saved, text[-4000:]  # not one update trained again
        print(f"\nSIGTERM at update >= 5: saved at update {saved[0]}, process ended and job pending again after "
              f"{stopped_s:.1f} s; resumed at update {resumed[0]}")
        assert metrics(save, 0)["end_update"] == 20 and metrics(save, 1)["end_update"] == 20
    finally:
        subprocess.run(["scancel", job], timeout=30)


LEAVE_AFTER_SIGTERM = """
import os, signal
os.environ["SLURM_JOB_ID"] = "1"  # what installs the handlers; nothing here asks SLURM
from fairseq_ext.requeue import PREEMPTION, Requeue
from fairseq_ext.trainer import TERMINATION
PREEMPTION.install()
TERMINATION.install()
PREEMPTION.enter_round_loop()
PREEMPTION.enter_training()
os.kill(os.getpid(), signal.SIGTERM)  # during the round's last update: its agreed stop never comes
try:
    PREEMPTION.leave_training()
except Requeue:
    print("requeued")
"""


def test_sigterm_after_the_rounds_last_update_exits_without_requeueing(tmp_path):
    """`scontrol requeue` brings back even a job SLURM is cancelling: after SIGTERM the rank never requeues."""
    p = subprocess.run([str(BIN / "python"), "-c", LEAVE_AFTER_SIGTERM], env=env(), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 128 + 15 and "requeued" not in p.stdout, p.stdout + p.stderr
    assert ("[lottery] rank 0: SIGTERM; the round's training ended, its checkpoint_last.pt saved; exiting (SLURM "
            "requeues or ends the job)") in p.stderr, p.stderr
