"""The main job's command, shortened: `lth demo` runs both tickets, prints the table and writes the report; the
runs a script starts beside its work stop when that work fails or the script is killed."""
import json
import subprocess
import types

import pytest

from .helpers import BIN, env


def test_lth_demo_runs_both_tickets_and_writes_the_report(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([str(BIN / "lth"), "demo", "--out", str(out), "--rounds", "1", "--rate", "0.4",
                           "--max-update", "40", "--generate-args=--beam 2 --max-len-b 10"],
                          env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("round"))
    assert lines[header].split()[:3] == ["round", "pruned", "updates"]
    dense = json.loads((out / "wt" / "round_00" / "metrics.json").read_text())["metrics"]
    # round 0: the dense score, RT "-" (the dense round is shared); round 1: both tickets, side by side
    assert lines[header + 1].split() == ["0", "0.0%", "40", "|", f"{dense['bleu']:.2f}", "-", "|",
                                         f"{dense['valid_loss']:.3f}", "-"]
    row1 = lines[header + 2].split()
    assert row1[:2] == ["1", "40.0%"] and "-" not in row1
    assert f"dense (round 0): BLEU {dense['bleu']:.2f} after 40 updates" in proc.stdout
    # the user's generation settings are passed on to fairseq-generate and recorded
    assert dense["generate_command"].endswith("--gen-subset test --cpu --beam 2 --max-len-b 10")
    assert f"reproduce: {dense['generate_command']}" in proc.stdout
    assert "round 1/1 finished" in proc.stderr  # the rounds' progress reaches the console
    for name in ("index.html", "report.csv", "figures/translation-src-tgt_tickets.png"):
        assert (out / "report" / name).is_file(), name
    csv = (out / "report" / "report.csv").read_text()
    assert "winning" in csv and "random" in csv


def test_runs_beside_a_failed_block_are_stopped_and_kept_when_it_succeeds():
    from fairseq_ext import demo

    def started():
        return types.SimpleNamespace(process=subprocess.Popen(["sleep", "60"]))

    beside = [started(), started()]
    with pytest.raises(SystemExit):
        with demo.stopped_on_error(beside):
            raise SystemExit("a run of the block failed")
    assert [w.process.poll() for w in beside] == [-15, -15]  # terminated, not left to hold their run directories
    kept = started()
    with demo.stopped_on_error([kept]):
        pass
    assert kept.process.poll() is None
    kept.process.kill()
    kept.process.wait()


def test_a_killed_script_takes_its_runs_with_it(tmp_path):
    """SIGKILL leaves a script no time to stop its runs: the kernel's parent-death signal does, so the same
    command finds no orphan holding its run directories."""
    import os
    import signal
    import sys
    import time

    script = ("import sys, time\nfrom fairseq_ext import demo\n"
              "demo.train_command = lambda *args: ['sleep', '120']\n"
              f"wait = demo.start_fairseq_train([], {str(tmp_path / 'run.log')!r})\n"
              "print(wait.process.pid, flush=True)\ntime.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], env=env(), stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())

    def alive(pid):
        try:
            return open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z"
        except FileNotFoundError:
            return False

    assert alive(child)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while alive(child) and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(child)


def test_a_plain_dense_run_started_again_resumes_from_its_checkpoint(mt_data, tmp_path, monkeypatch):
    """The dense check beside a script's runs is plain fairseq-train, whose checkpoints torch's default loader
    refuses: started again after a kill it must resume, not crash."""
    from fairseq_ext import demo

    from .helpers import MT_MODEL

    for var in ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_WEIGHTS_ONLY_LOAD"):
        monkeypatch.delenv(var, raising=False)
    save = tmp_path / "dense"
    model = ["polynomial_decay" if a == "inverse_sqrt" else a for a in MT_MODEL]  # the demo's schedule
    flags = [*model, "--cpu", "--num-workers", "0", "--no-progress-bar", "--no-epoch-checkpoints"]
    demo.start_dense(mt_data, save, 10, seed=1, flags=flags)()
    demo.start_dense(mt_data, save, 20, seed=1, flags=flags)()  # as a rerun after a kill: from update 10 on
    log = (tmp_path / "dense.log").read_text()
    assert "Loaded checkpoint" in log and "num_updates 20" in log, log[-3000:]
