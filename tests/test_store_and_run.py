"""The run store and the round driver: layout, atomicity, resume, locking, configuration checks."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lth_plugins import LotteryConfig, RunStore
from lth_plugins.demo import run_ticket
from lth_plugins.errors import RunStoreError
from lth_plugins.store import default_run_dir

ROOT = Path(__file__).resolve().parents[1]


def small_run(tmp_path, name="wt", rounds=3, **kw):
    cfg = LotteryConfig(rounds=rounds, late_reset="1ep", **kw)
    return run_ticket(cfg, tmp_path / name, seed=0, epochs=2, n_train=256)


def test_run_layout_masks_metrics_sparsity(tmp_path):
    run_dir = small_run(tmp_path)
    assert json.loads((run_dir / "config.json").read_text())["lottery"]["rounds"] == 3
    assert (run_dir / "snapshots" / "init.pt").is_file() and (run_dir / "snapshots" / "late.pt").is_file()
    store = RunStore(run_dir)
    n = None
    for k in range(4):
        m = store.read_round(k)
        assert m.round == k and "test_accuracy" in m.metrics and m.primary == "test_accuracy"
        sp = store.read_sparsity(k)
        n = n or sum(sp["numel"].values())
        surviving = sum(sp["density"][p] * sp["numel"][p] for p in sp["density"])
        assert round(surviving) == round(n * 0.8 ** k)
        if k:
            mask = store.load_mask(k)
            assert mask.num_surviving() == round(n * 0.8 ** k)
            # bit-packed: about N/8 bytes plus a small header
            assert store.mask_path(k).stat().st_size < n / 8 + 2048
    # layers end with different sparsities under global pruning
    dens = store.read_sparsity(3)["density"]
    assert max(dens.values()) - min(dens.values()) > 0.05


def test_rerunning_a_finished_run_does_nothing(tmp_path):
    run_dir = small_run(tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
    t = time.time()
    small_run(tmp_path)
    assert time.time() - t < 5
    assert stamps == {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}


def test_random_ticket_uses_the_winning_masks(tmp_path):
    wt = small_run(tmp_path)
    rt = small_run(tmp_path, "rt", ticket="random", masks_from=str(wt), reset="init")
    assert not (rt / "round_00").exists()  # round 0 is the dense network, shared with the winning ticket
    for k in (1, 2, 3):
        m = RunStore(rt).read_round(k)
        assert m.ticket == "random"
        assert m.surviving == RunStore(wt).read_round(k).surviving
        assert RunStore(rt).read_sparsity(k)["density"] == RunStore(wt).read_sparsity(k)["density"]


def test_oneshot_writes_every_mask_after_the_dense_round(tmp_path):
    wt = small_run(tmp_path, schedule="oneshot", rounds=2)
    store = RunStore(wt)
    m1, m2 = store.load_mask(1), store.load_mask(2)
    # one-shot masks all come from the dense weights, so deeper masks are nested in shallower ones
    assert all(not (m2[n] & ~m1[n]).any() for n in m1)


KILL_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from lth_plugins import LotteryConfig
    from lth_plugins.demo import run_ticket
    run_ticket(LotteryConfig(rounds=4, late_reset="1ep"), sys.argv[1], seed=0, epochs=2, n_train=2048)
""")


def _run_demo(run_dir, kill_after_round=None):
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(run_dir)], stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=ROOT)
    if kill_after_round is None:
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
        return
    marker = Path(run_dir) / f"round_{kill_after_round:02d}" / "metrics.json"
    deadline = time.time() + 300
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_kill_and_resume_gives_the_same_masks_as_an_uninterrupted_run(tmp_path):
    _run_demo(tmp_path / "straight")
    _run_demo(tmp_path / "killed", kill_after_round=1)
    assert not RunStore(tmp_path / "killed").round_done(4)
    _run_demo(tmp_path / "killed")  # same command again: continues, and finishes
    a, b = RunStore(tmp_path / "straight"), RunStore(tmp_path / "killed")
    for k in range(1, 5):
        assert a.load_mask(k).checksum() == b.load_mask(k).checksum()
        assert a.read_round(k).metrics == b.read_round(k).metrics


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    cfg = {"lottery": LotteryConfig().to_dict(), "task": "t"}
    first = RunStore(tmp_path / "r", cfg)
    with pytest.raises(RunStoreError, match="in use by another process"):
        RunStore(tmp_path / "r", cfg)
    first.close()
    RunStore(tmp_path / "r", cfg).close()


def test_different_configuration_is_refused_showing_the_keys_and_nothing_is_overwritten(tmp_path):
    run_dir = small_run(tmp_path, rounds=1)
    before = (run_dir / "config.json").read_bytes()
    files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(RunStoreError) as e:
        small_run(tmp_path, rounds=1, rate=0.5)
    assert "lottery.rate" in str(e.value) and "0.2" in str(e.value) and "0.5" in str(e.value)
    assert (run_dir / "config.json").read_bytes() == before
    assert files == {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}


def test_raising_rounds_extends_a_finished_run(tmp_path):
    small_run(tmp_path, rounds=1)
    run_dir = small_run(tmp_path, rounds=2)
    assert RunStore(run_dir).round_done(2)


def test_default_run_dir_names_framework_task_seed_and_ticket():
    assert str(default_run_dir("flare", "CartPole-v0", 2, "random")) == "runs/flare_CartPole-v0_s2_random"
    assert default_run_dir("elf", "breakout", 0, "winning") != default_run_dir("elf", "breakout", 1, "winning")


def test_status_table_lists_rounds(tmp_path):
    wt = small_run(tmp_path, rounds=2)
    out = subprocess.run([sys.executable, "-m", "lth_plugins.cli", "status", str(wt)], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 5 and "36.0%" in lines[-2] and "done" in lines[-2]
    assert lines[-1] == (f"{wt.name}: every round is finished; round 3's mask (48.8% pruned) is made, so the same run "
                         f"with rounds 3 or more extends it")
    out = subprocess.run([sys.executable, "-m", "lth_plugins.cli", "status", str(wt), "--attempts"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and not out.stdout  # refused, not silently ignored
    assert out.stderr == (f"lth: error: --attempts shows the attempts of a sweep's jobs, and no sweep ran {wt}: drop "
                          f"--attempts to see its rounds\n")


def test_lth_plugins_lists_every_namespace():
    out = subprocess.run([sys.executable, "-m", "lth_plugins.cli", "plugins"], capture_output=True, text=True,
                         cwd=ROOT)
    for name in ("global_magnitude", "layerwise_magnitude", "random", "init", "late", "lth_plugins.frameworks"):
        assert name in out.stdout


def test_raising_rounds_extends_a_finished_oneshot_run(tmp_path):
    small_run(tmp_path, rounds=1, schedule="oneshot")
    run_dir = small_run(tmp_path, rounds=2, schedule="oneshot")
    store = RunStore(run_dir)
    assert store.round_done(2) and store.load_mask(2).density() == pytest.approx(0.64, abs=1e-3)


def test_round_0_trained_again_from_init_takes_its_late_snapshot_again(tmp_path):
    """A trainer without mid-round checkpoints (FLARE, ELF) trains a killed round 0 again from init; the late
    snapshot the killed attempt took belongs to another trajectory than the rerun's trained weights, so the
    rerun takes its own (and the masks come from the same attempt as the snapshot)."""
    import torch

    from lth_plugins.run import LotteryRun

    cfg = LotteryConfig(rounds=1, late_reset="2u")

    def fresh_model():
        torch.manual_seed(0)
        return torch.nn.Linear(4, 3)

    def attempt(step: float, killed_after: int = 0):
        model = fresh_model()
        run = LotteryRun(cfg, tmp_path / "wt", task="t", framework="torch", total_updates=4, progress=False)
        r = run.open_round(0, model)
        r.attach_optimizer(torch.optim.SGD(model.parameters(), lr=0.0))
        for n in range(1, 5):
            with torch.no_grad():
                model.weight.add_(step)  # one "update"; the two attempts take different ones
            r.after_update(n)
            if n == killed_after:
                run.close()
                return
        r.finish({"m": 1.0}, primary="m", higher_is_better=True)
        run.close()

    init = fresh_model().weight.detach().clone()
    attempt(1.0, killed_after=3)
    assert torch.allclose(RunStore(tmp_path / "wt").load_snapshot("late")["weight"], init + 2.0)
    attempt(5.0)
    assert torch.allclose(RunStore(tmp_path / "wt").load_snapshot("late")["weight"], init + 10.0)


def test_a_lock_file_replaced_while_it_is_being_taken_leaves_one_writer(tmp_path, monkeypatch):
    """The previous holder died. Starter A takes the lock; before A records its pid, starter B reads the dead pid,
    replaces the file and locks the new one. A must notice and give way: one writer, never two."""
    import fcntl

    import lth_plugins.lock as lock_module

    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / ".lock").write_text("999999999")  # no such process
    cfg = {"lottery": LotteryConfig().to_dict(), "task": "t"}
    real_write, other = os.write, {}

    def write(fd, data):  # B acts between A's lock and A's pid
        if not other:
            os.unlink(run_dir / ".lock")
            other["fd"] = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT)
            fcntl.flock(other["fd"], fcntl.LOCK_EX | fcntl.LOCK_NB)
            real_write(other["fd"], str(os.getpid()).encode())
        return real_write(fd, data)

    monkeypatch.setattr(lock_module.os, "write", write)
    with pytest.raises(RunStoreError, match="in use by another process"):
        RunStore(run_dir, cfg)
    monkeypatch.setattr(lock_module.os, "write", real_write)
    os.close(other["fd"])


def _fairseq_like(dict_hash, folder, **lottery):
    """A configuration as fairseq stores one: its data as content (file -> fingerprint) and where it lay."""
    return {"lottery": LotteryConfig(rounds=1, **lottery).to_dict(), "framework": "fairseq", "task": "translation",
            "settings": {"data": {"dict.src.txt": f"sha256:{dict_hash}", "train.src-tgt.src.bin": 10},
                         "data_folder": folder, "lr": [0.005]}}


def test_a_random_ticket_on_other_data_is_told_so_plainly(tmp_path):
    from lth_plugins.errors import LotteryConfigError
    from lth_plugins.sources import check_ticket_source

    wt = tmp_path / "wt"
    RunStore(wt, _fairseq_like("aa" * 32, "/data/en-de")).close()
    rt = _fairseq_like("bb" * 32, "/data/en-fr", ticket="random", masks_from=str(wt))
    with pytest.raises(LotteryConfigError) as e:
        check_ticket_source(RunStore(wt), rt, 1)
    msg = str(e.value)
    assert (f"the random ticket must train on the data of its winning run {wt}, but the data differs (in "
            "dict.src.txt; data folder: winning run /data/en-de, now /data/en-fr): give it the data folder the "
            "winning run was given") == msg
    rt["settings"]["lr"] = [0.001]
    with pytest.raises(LotteryConfigError, match=r"other settings differ too: settings.lr: winning run \[0.005\]"):
        check_ticket_source(RunStore(wt), rt, 1)
    # the same data elsewhere is the same data
    check_ticket_source(RunStore(wt), _fairseq_like("aa" * 32, "/scratch/en-de", ticket="random",
                                                    masks_from=str(wt)), 1)


def test_a_rerun_on_other_data_names_the_files_and_folders_and_a_moved_copy_resumes(tmp_path):
    run = tmp_path / "run"
    with RunStore(run, _fairseq_like("aa" * 32, "/data/en-de")) as store:
        store.save_snapshot("init", {})
    with pytest.raises(RunStoreError) as e:
        RunStore(run, _fairseq_like("bb" * 32, "/data/en-fr"))
    assert ("Differing keys: the data differs (in dict.src.txt; data folder: stored /data/en-de, now /data/en-fr). "
            "Rerun with the stored settings to continue this run, or give the new ones another run directory.") \
        in str(e.value)
    assert "sha256" not in str(e.value)
    RunStore(run, _fairseq_like("aa" * 32, "/scratch/en-de")).close()
    assert RunStore(run).config["settings"]["data_folder"] == "/scratch/en-de"  # where it lies now


def test_a_rerun_may_change_the_settings_its_adapter_declares_scoring_only(tmp_path):
    from lth_plugins.sources import dense_round_mismatch

    def config(beam, clip=0.0, scoring=("generate_args",)):
        return {"lottery": LotteryConfig().to_dict(), "framework": "f", "task": "t", "scoring": list(scoring),
                "settings": {"generate_args": beam, "clip": clip}}

    with RunStore(tmp_path, config("--beam 1")) as store:
        store.save_snapshot("init", {})  # a run with results
    RunStore(tmp_path, config("--beam 5")).close()  # declared scoring-only: accepted, and recorded
    assert RunStore.view(tmp_path).config["settings"]["generate_args"] == "--beam 5"
    with pytest.raises(RunStoreError, match="settings.clip: stored 0.0 vs now 0.5"):
        RunStore(tmp_path, config("--beam 5", clip=0.5))
    with pytest.raises(RunStoreError, match="settings.generate_args"):  # not declared now: part of the run
        RunStore(tmp_path, config("--beam 2", scoring=()))
    # a run reusing another's dense round may score it otherwise, not train it otherwise
    assert dense_round_mismatch(config("--beam 1"), config("--beam 5"), "there") is None
    assert "settings.clip" in dense_round_mismatch(config("--beam 1"), config("--beam 1", clip=0.5), "there")
