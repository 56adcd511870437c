"""Run `lth sweep` as a user does, kill it (the sweep, submitit's controllers and the jobs) in the middle of the
grid, and check on the way that no random ticket's round k started before its winning ticket's mask k existed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def lth(*args, timeout=900):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([str(BIN / "lth"), *map(str, args)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(json.dumps(cfg))
    return path


def rounds_started(run_dir: Path):
    return {int(p.parent.name.split("_")[1]) for p in run_dir.glob("round_*/started.json")}


def run_and_kill(cfg_path: Path, sweep: Path, pairs, kill_when, log_path: Path, timeout=600) -> None:
    """Run the sweep until `kill_when()` holds, then SIGKILL its whole process group. For the (wt, rt) run dirs
    of `pairs` it checks at every poll that no random-ticket round k has started before the WT's mask k existed."""
    cmd = [str(BIN / "lth"), "sweep", str(cfg_path), str(sweep), "--poll", "0.3"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        try:
            while True:
                assert proc.poll() is None and time.time() < deadline, \
                    f"the sweep ended or stalled before the kill:\n{log_path.read_text()[-3000:]}"
                for wt, rt in pairs:
                    for k in rounds_started(rt):
                        assert (wt / f"round_{k:02d}" / "mask.lthm").is_file(), (rt, k)
                if kill_when():
                    break
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def submitted_while_winning_trains(sweep_log: str, wt_job: str, rt_job: str) -> bool:
    """Whether the sweep submitted the random ticket before its winning ticket was done (pipelined)."""
    lines = sweep_log.splitlines()
    sub = next((i for i, ln in enumerate(lines) if f"{rt_job}: submitted" in ln), None)
    done = next((i for i, ln in enumerate(lines) if f"{wt_job}: done" in ln), None)
    return sub is not None and (done is None or sub < done)


def failed_job_logs(sweep: Path, tail: int = 3000) -> str:
    """The ends of the logs of the sweep's jobs whose last attempt failed (for an assertion's message)."""
    out = []
    for log in sorted((sweep / "logs").glob("*.log")):
        text = log.read_text(errors="replace")
        last_exit = text.rstrip().rsplit("\n", 1)[-1]
        if "exit code" in last_exit and not last_exit.endswith("exit code 0"):
            out.append(f"--- {log.name} ---\n{text[-tail:]}")
    return "\n".join(out)


def finished_rounds(sweep: Path):
    return {p: p.stat().st_mtime_ns for p in sweep.glob("runs/**/metrics.json")}
