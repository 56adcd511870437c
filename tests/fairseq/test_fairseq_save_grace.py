"""--lottery-save-grace under the real local SLURM: without sbatch's --signal, the plugin warns itself that many
seconds before the job's time limit, saves the round's checkpoint at an update the ranks agree on and requeues the
job; and the flags a lottery cannot honour are refused before anything is written."""
import os
import re
import subprocess
import time

import pytest

from ..slurm_cluster import wait_until
from .helpers import BIN, COMMON, MT_MODEL, USER_DIR, env, fairseq_train, load_ckpt

LOTTERY = ["--lottery-prune", "--lottery-rounds", "1"]


@pytest.mark.parametrize("flags, message", [
    (["--zero-sharding", "os"], "--lottery-prune does not support --zero-sharding os: a sharded optimizer state is "
                                "gathered by all ranks together at each save"),
    (["--lottery-save-grace", "-1"], "--lottery-save-grace must be >= 0 seconds (got -1)"),
])
def test_flags_the_lottery_cannot_honour_are_refused(mt_data, tmp_path, flags, message):
    p = fairseq_train(mt_data, tmp_path / "run", *MT_MODEL, "--max-update", "8", *LOTTERY, *flags, check=False)
    assert p.returncode != 0 and message in p.stdout, p.stdout[-2000:]
    assert not (tmp_path / "run").exists()


def test_the_plugin_warns_itself_save_grace_seconds_before_the_time_limit(slurm_cluster, mt_data, tmp_path):
    save, out = tmp_path / "run", tmp_path / "job.out"
    train = " ".join([str(BIN / "fairseq-train"), str(mt_data), "--save-dir", str(save), *COMMON, *MT_MODEL,
                      "--max-update", "100000", *LOTTERY, "--lottery-save-grace", "60"])
    e = env()
    e["PATH"] = f"{BIN}{os.pathsep}{e['PATH']}"
    # a 2-minute time limit, no --signal: the warning can only come from the plugin, 60 s after the start
    job = subprocess.run(["sbatch", "--parsable", "--requeue", "--open-mode=append", "--ntasks=1",
                          "--cpus-per-task=1", "--time=2", f"--output={out}", "--wrap",
                          f"srun {train} --user-dir {USER_DIR}"],
                         env=e, capture_output=True, text=True, timeout=60, check=True).stdout.strip().split(";")[0]
    try:
        t0 = time.monotonic()
        pattern = rf"round 0: checkpoint_last\.pt saved at update (\d+); SLURM job {job} requeued"
        wait_until(lambda: out.exists() and re.search(pattern, out.read_text()), 110,
                   lambda: f"job {job} to save and requeue itself ({out.read_text()[-3000:] if out.exists() else ''})")
        print(f"\n--lottery-save-grace 60 with --time=2: saved and requeued {time.monotonic() - t0:.0f} s after sbatch")
        saved = int(re.search(pattern, out.read_text()).group(1))
        state = load_ckpt(save / "round_00" / "checkpoint_last.pt")
        assert state["optimizer_history"][-1]["num_updates"] == saved
        wait_until(lambda: "Restarts=1 " in subprocess.run(["scontrol", "show", "job", "-o", job],
                                                           capture_output=True, text=True).stdout, 60,
                   f"job {job} requeued")
    finally:
        subprocess.run(["scancel", job], timeout=30)
