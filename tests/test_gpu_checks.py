"""`benchmarks/gpu_checks.sh` as the GPU machine will run it, short of CUDA: the wheel folder made by --prepare
passes its own check, and --dry-run installs it offline into a fresh folder on a Python 3.12 stand-in for the
machine's image and sets up every part. Minutes of builds and set-ups that wait on nothing else: when the whole
suite runs, conftest starts them at collection, niced, beside the other tests (`start_in_background`), and the test,
run last, checks what they left. It runs in CI (CI set), and elsewhere with LTH_GPU_DRY_RUN=1."""
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_checks.sh"

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_parts  # noqa: E402

from lth_plugins.children import die_with_parent  # noqa: E402

DRY_RUN_TEST = "test_prepared_folder_installs_offline_and_every_part_sets_up"
ENABLED = bool(os.environ.get("CI") or os.environ.get("LTH_GPU_DRY_RUN"))
slow = pytest.mark.skipif(not ENABLED, reason="minutes of builds: runs in CI, or with LTH_GPU_DRY_RUN=1")
BACKGROUND = {}  # the prepare and dry run under way: {"proc": Popen, "work": folder}
NICE = 10  # below the tests beside it, whose timings it should not move
BUDGET_S = 3600  # the dry run's budget for all its parts (each part may take gpu_parts.DRY_RUN_MIN_S)
STEPS = ("stand_in", "prepare", "dry_run")


def start_in_background() -> None:
    """The stand-in (made while --prepare compiles), then the dry run of the prepared folder, in a process of its
    own that ends with this one; each step's output and exit status, and every temporary file, land in
    BACKGROUND["work"]."""
    work = Path(tempfile.mkdtemp(prefix="lth-gpu-dry-run-"))
    (work / "tmp").mkdir()
    sh, w = shlex.quote(str(SCRIPT)), shlex.quote(str(work))
    # each step waited for in the background, so that the SIGTERM of pytest's death ends them at once
    steps = (f"trap 'rm -rf {w}; kill -KILL -- -$$' TERM; "
             f"bash {sh} --stand-in > {w}/stand_in.log 2>&1 & s=$!; "
             f"bash {sh} --prepare {w}/wheels > {w}/prepare.log 2>&1 & wait $!; echo $? > {w}/prepare.rc; "
             f"wait $s; echo $? > {w}/stand_in.rc; "
             f"bash {sh} --dry-run {w}/wheels {w}/out > {w}/dry_run.log 2>&1 & wait $!; echo $? > {w}/dry_run.rc")
    env = dict(os.environ, GPU_BUDGET_S=str(BUDGET_S), TMPDIR=str(work / "tmp"))
    parent = os.getpid()
    BACKGROUND.update(work=work, proc=subprocess.Popen(
        ["nice", "-n", str(NICE), "bash", "-c", steps], cwd=ROOT, env=env, start_new_session=True,
        preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent)))


def _descendants(pid: int) -> list:
    """pid and every process below it (the dry run starts each part in a session of its own)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def stop_background(keep_logs_in: Path = None) -> None:
    """The background steps ended, whatever state they are in; their logs copied to `keep_logs_in` and their
    folder removed."""
    if not BACKGROUND:
        return
    proc, work = BACKGROUND.pop("proc"), BACKGROUND.pop("work")
    if proc.poll() is None:
        for pid in _descendants(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
    if keep_logs_in is not None:
        for log in [*work.glob("*.log"), *work.glob("out/*")]:
            shutil.copy2(log, keep_logs_in / log.name)
    shutil.rmtree(work, ignore_errors=True)


def background_results():
    """{step: (exit status, output)} of the background steps, once they ended."""
    BACKGROUND["proc"].wait(timeout=2 * BUDGET_S)
    work = BACKGROUND["work"]
    return {step: (int((work / f"{step}.rc").read_text()) if (work / f"{step}.rc").is_file() else None,
                   (work / f"{step}.log").read_text() if (work / f"{step}.log").is_file() else "")
            for step in STEPS}


def test_elf_curve_is_read_from_the_dense_round_and_drawn(tmp_path):
    log = ["[elf breakout winning round 0] epoch 1/9: 20/180 batches, 0 games finished (mean score -), 900.5 steps/s",
           "[elf breakout winning round 0] epoch 2/9: 40/180 batches, 12 games finished (mean score 1.50), 950.0 "
           "steps/s",
           "[elf breakout winning round 0] epoch 3/9: 60/180 batches, 30 games finished (mean score 4.25), 960.0 "
           "steps/s",
           "[elf breakout winning round 1] epoch 1/9: 20/180 batches, 9 games finished (mean score 9.00), 990.0 "
           "steps/s"]
    f = gpu_parts.figures_of("elf_curve", "\n".join(log), tmp_path, list(zip([10.0, 20.0, 30.0, 40.0], log)))
    assert [(c["epoch"], c["mean_score"], c["seconds"]) for c in f["curve"]] == [(1, None, 10.0), (2, 1.5, 20.0),
                                                                                (3, 4.25, 30.0)]
    png = tmp_path / "curve.png"
    assert gpu_parts.plot_curve(f["curve"], png, "test") == 2 and png.read_bytes()[:4] == b"\x89PNG"


@slow
def test_prepared_folder_installs_offline_and_every_part_sets_up(tmp_path):
    if not BACKGROUND:  # run alone
        start_in_background()
    try:
        done = background_results()
        work = BACKGROUND["work"]
        folder, out = work / "wheels", work / "out"
        for step in STEPS:
            rc, text = done[step]
            assert rc == 0, f"{step}: exit {rc}\n{text[-8000:]}"
        names = sorted(p.name for p in folder.iterdir())
        assert any(n.startswith("elf_rl-") and "-cp312-cp312-" in n for n in names), names
        assert any(n.startswith("fairseq_fixed-") and "-cp312-cp312-" in n for n in names), names
        assert "libtbb.so.12" in names and not (folder / "libtbb.so.12").is_symlink()

        # a folder missing a needed wheel is refused before anything is installed, naming it
        broken = tmp_path / "broken"
        shutil.copytree(folder, broken)
        (hydra,) = broken.glob("hydra_core-*.whl")
        hydra.unlink()
        p = subprocess.run([sys.executable, "benchmarks/gpu_prepare.py", "check", str(broken)], cwd=ROOT,
                           capture_output=True, text=True)
        assert p.returncode != 0 and "fairseq-fixed needs hydra-core" in p.stderr, p.stderr

        report = json.loads((out / "gpu_checks.json").read_text())
        assert report["python"].startswith("3.12.") and report["mode"].startswith("dry run"), report
        assert not any(v.startswith("missing") for k, v in report.items()
                       if k in ("fairseq-fixed", "elf-rl", "ale-py"))
        statuses = {k: v["status"] for k, v in report["parts"].items()}
        assert list(statuses) == ["masked_step", "mixed_precision", "pruning_round", "slurm_init", "updates_per_s",
                                  "elf_speed", "elf_curve"], statuses
        assert all(s == "ok" for s in statuses.values()), statuses
        assert report["parts"]["mixed_precision"]["collected"] >= 2, report["parts"]["mixed_precision"]
        assert report["parts"]["slurm_init"]["init"], report["parts"]["slurm_init"]
        files = sorted(p.name for p in out.iterdir())
        assert files == ["elf_learning_curve.png", "gpu_checks.json", "gpu_checks.log"], files
    finally:
        stop_background(keep_logs_in=tmp_path)
