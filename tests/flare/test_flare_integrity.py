"""FLARE run integrity on the real FLARE: a kill of the main process leaves no orphan and no lock, the
same command resumes, Ctrl-C prints no traceback, a log file shows per-epoch progress, a random ticket must
train as its winning run did."""
import os
import signal
import subprocess
import sys
import time

from .test_flare_integration import REPO, TINY, _run  # noqa: F401  (skips this module without FLARE)

# long enough to be killed while FLARE's agents and logger run
SLOW = ["--game", "CartPole-v0", "--epochs", "2", "--games-per-epoch", "40", "--last-games", "4",
        "--agents", "2", "--hidden", "32,32,32", "--lr", "1e-3", "--seed", "0", "--lottery-prune",
        "--lottery-rounds", "1"]


def _children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d))
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start(run_dir, extra=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "flare_ext.a2c", *SLOW, "--run-dir", str(run_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                            start_new_session=True)


def _wait_for_flare_children(proc, n=3, timeout=120):
    """FLARE's 2 agents and its logger are running under `proc`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        kids = _children(proc.pid)
        if len(kids) >= n:
            return kids
        time.sleep(0.1)
    raise AssertionError("FLARE's agents did not start")


def _kill_and_check_no_orphans(proc, sig):
    kids = _wait_for_flare_children(proc)
    time.sleep(1.0)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    deadline = time.time() + 5
    while any(_alive(k) for k in kids) and time.time() < deadline:
        time.sleep(0.1)
    orphans = [k for k in kids if _alive(k)]
    for k in orphans:
        os.kill(k, signal.SIGKILL)
    assert not orphans, f"children {orphans} outlived the {signal.Signals(sig).name} of their main process"


def test_kill_of_the_main_process_leaves_no_orphan_and_the_same_command_resumes(tmp_path):
    run_dir = tmp_path / "wt"
    _kill_and_check_no_orphans(_start(run_dir), signal.SIGKILL)
    _kill_and_check_no_orphans(_start(run_dir), signal.SIGTERM)  # the same command is not refused
    proc = _start(run_dir)
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    assert (run_dir / "round_01" / "metrics.json").is_file()
    # stdout is a pipe, not a terminal: progress still shows a line per epoch with rate and ETA
    epochs = [ln for ln in out.splitlines() if "epoch " in ln and "games/s" in ln and "ETA" in ln]
    assert len(epochs) >= 2, out[-2000:]

    # a random ticket that trains otherwise than its winning run is refused before anything is written
    rt = _run(["-m", "flare_ext.a2c", *SLOW, "--lr", "1e-2", "--games-per-epoch", "20",
               "--lottery-ticket", "random", "--lottery-masks-from", str(run_dir), "--run-dir", str(tmp_path / "rt")])
    assert rt.returncode == 2 and "settings.lr" in rt.stderr and "settings.games_per_epoch" in rt.stderr, rt.stderr
    assert not (tmp_path / "rt").exists()


def test_ctrl_c_stops_the_run_without_a_traceback(tmp_path):
    proc = _start(tmp_path / "wt")
    kids = _wait_for_flare_children(proc)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C at a terminal does
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in out + err, (out + err)[-3000:]
    time.sleep(1)
    assert not [k for k in kids if _alive(k)]
