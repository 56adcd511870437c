"""`benchmarks/gpu_checks.sh` as the GPU machine will run it, short of CUDA: the wheel folder made by --prepare
passes its own check, and --dry-run installs it offline into a fresh folder on a Python 3.12 stand-in for the
machine's image and sets up every part. Minutes (a Python 3.12 ELF build and the stand-in the first time): it runs
in CI (CI set), and elsewhere with LTH_GPU_DRY_RUN=1."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_checks.sh"

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_parts  # noqa: E402

slow = pytest.mark.skipif(not (os.environ.get("CI") or os.environ.get("LTH_GPU_DRY_RUN")),
                          reason="minutes of builds: runs in CI, or with LTH_GPU_DRY_RUN=1")


def _run(*args, timeout):
    p = subprocess.run(["bash", str(SCRIPT), *map(str, args)], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout


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
    folder, out = tmp_path / "wheels", tmp_path / "out"
    # the stand-in (mostly a download) is made while --prepare compiles
    stand_in = subprocess.Popen(["bash", str(SCRIPT), "--stand-in"], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
    rc, text = _run("--prepare", folder, timeout=1800)
    stand_in_text = stand_in.communicate(timeout=1800)[0]
    assert rc == 0, text[-5000:]
    assert stand_in.returncode == 0, stand_in_text[-5000:]
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

    rc, text = _run("--dry-run", folder, out, timeout=1800)
    assert rc == 0, text[-8000:]
    report = json.loads((out / "gpu_checks.json").read_text())
    assert report["python"].startswith("3.12.") and report["mode"].startswith("dry run"), report
    assert not any(v.startswith("missing") for k, v in report.items() if k in ("fairseq-fixed", "elf-rl", "ale-py"))
    statuses = {k: v["status"] for k, v in report["parts"].items()}
    assert list(statuses) == ["masked_step", "mixed_precision", "pruning_round", "slurm_init", "updates_per_s",
                              "elf_speed", "elf_curve"], statuses
    assert all(s == "ok" for s in statuses.values()), statuses
    assert report["parts"]["mixed_precision"]["collected"] >= 2, report["parts"]["mixed_precision"]
    assert report["parts"]["slurm_init"]["init"], report["parts"]["slurm_init"]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["elf_learning_curve.png", "gpu_checks.json", "gpu_checks.log"], files
