"""Run integrity in the core: validation before any write, one whole configuration, locks of dead processes,
masks that mean what they say."""
import fcntl
import gc
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from lth_plugins import LotteryConfig, LotteryRun, Mask, RunStore, survivors
from lth_plugins.demo import run_ticket
from lth_plugins.errors import LotteryConfigError, LotteryError, MaskError, RunStoreError
from lth_plugins.enforce import MaskEnforcer
from lth_plugins.masks import MAGIC
from lth_plugins.progress import RoundProgress
from lth_plugins.pruners import GlobalMagnitude, LayerwiseMagnitude, RandomPruner
from lth_plugins.selection import select_parameters
from lth_plugins.lock import read_holder
from lth_plugins.status import round_rows

from .models import mlp

ROOT = Path(__file__).resolve().parents[1]


def files_of(path):
    return {p: p.read_bytes() for p in Path(path).rglob("*") if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def wt(tmp_path_factory):
    """A finished winning ticket of the core demo: 2 rounds, lr/epochs/n_train as `settings`."""
    return run_ticket(LotteryConfig(rounds=2, late_reset="1ep"), tmp_path_factory.mktemp("wt") / "wt",
                      seed=0, epochs=2, n_train=256)


def rt_run(wt, run_dir, model=None, settings=None, **kw):
    cfg = LotteryConfig(**{"rounds": 2, "ticket": "random", "masks_from": str(wt), **kw})
    return LotteryRun(cfg, run_dir, task="teacher-mlp", framework="torch", model=model,
                      settings=settings if settings is not None else {"seed": 0, "epochs": 2, "n_train": 256})


# --- nothing written before a run is known to start --------------------------------------------------------
def test_random_ticket_of_another_network_writes_nothing_and_the_corrected_command_runs(wt, tmp_path):
    from lth_plugins.demo import make_model

    with pytest.raises(MaskError, match="does not match the parameters this run prunes"):
        rt_run(wt, tmp_path / "rt", model=mlp())  # another network than the winning run's
    assert not (tmp_path / "rt" / "config.json").exists()
    rt_run(wt, tmp_path / "rt", model=make_model(0), seed=3).close()


def test_a_source_run_is_one_run_however_it_is_spelled(wt, tmp_path, monkeypatch):
    """A random ticket given its winning run as a relative path stores it absolute: the same command with
    `./wt/` resumes it, and a reader in another folder (a report) still finds its source."""
    monkeypatch.chdir(wt.parent)
    rt = tmp_path / "rt"
    run_ticket(LotteryConfig(rounds=1, ticket="random", masks_from=wt.name), rt, seed=0, epochs=2, n_train=256)
    stored = json.loads((rt / "config.json").read_text())["lottery"]["masks_from"]
    assert stored == str(wt)
    run_ticket(LotteryConfig(rounds=2, ticket="random", masks_from=f"./{wt.name}/"), rt, seed=0, epochs=2,
               n_train=256)
    monkeypatch.chdir(tmp_path)
    assert RunStore(rt).round_done(2) and RunStore(RunStore(rt).lottery.source_dir).round_done(2)


def test_a_directory_holding_only_a_configuration_takes_a_corrected_one(tmp_path):
    a = {"lottery": LotteryConfig().to_dict(), "task": "t"}
    b = {"lottery": LotteryConfig(rate=0.5).to_dict(), "task": "t"}
    RunStore(tmp_path / "r", a).close()
    with RunStore(tmp_path / "r", b) as store:  # nothing but config.json: re-opened with the new one
        assert store.config["lottery"]["rate"] == 0.5
    (tmp_path / "r" / "snapshots").mkdir()
    (tmp_path / "r" / "snapshots" / "init.pt").write_bytes(b"x")
    with pytest.raises(RunStoreError, match="lottery.rate"):
        RunStore(tmp_path / "r", a)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["lottery"]["rate"] == 0.5


@pytest.mark.parametrize("spec,kw,msg", [
    ("20ep", {"total_updates": 120, "updates_per_epoch": 15}, "beyond the training length of 120 updates"),
    ("100u", {"total_epochs": 4, "updates_per_epoch": 20}, "beyond the training length of 4 epochs"),
])
def test_late_reset_point_is_checked_against_every_length(spec, kw, msg, tmp_path):
    with pytest.raises(LotteryConfigError, match=msg):
        LotteryRun(LotteryConfig(late_reset=spec), tmp_path / "r", task="t", framework="torch", **kw)
    assert not (tmp_path / "r").exists()
    LotteryConfig(late_reset="7ep").validate(total_updates=120, updates_per_epoch=15)


def test_epochs_count_from_one(tmp_path):
    with LotteryRun(LotteryConfig(rounds=1), tmp_path / "r", task="t", framework="torch") as run:
        r = run.open_round(0, mlp())
        with pytest.raises(LotteryError, match="epochs count from 1"):
            r.after_epoch(0)


# --- one configuration, the whole configuration -------------------------------------------------------------
def test_random_ticket_must_train_as_the_winning_run(wt, tmp_path):
    before = files_of(wt)
    with pytest.raises(LotteryConfigError) as e:
        rt_run(wt, tmp_path / "rt", rate=0.5, settings={"seed": 0, "epochs": 3, "n_train": 256})
    assert "lottery.rate" in str(e.value) and "settings.epochs" in str(e.value)
    with pytest.raises(LotteryConfigError, match="schedule"):
        rt_run(wt, tmp_path / "rt", schedule="oneshot")
    with pytest.raises(LotteryConfigError, match=r"asks for 4 rounds \(rounds, --lottery-rounds\) but the winning run .* has masks for 3; give --lottery-rounds 3"):
        rt_run(wt, tmp_path / "rt", rounds=4)
    assert not (tmp_path / "rt").exists() and files_of(wt) == before
    # the ticket type, its seeds, its reset and its rounds (within the masks there are) may differ
    rt_run(wt, tmp_path / "rt", rounds=3, seed=5, reset="init", settings={"seed": 1, "epochs": 2,
                                                                          "n_train": 256}).close()


# --- crashes and locks --------------------------------------------------------------------------------------
def test_a_lock_whose_holder_is_dead_never_blocks(tmp_path):
    cfg = {"lottery": LotteryConfig().to_dict(), "task": "t"}
    RunStore(tmp_path / "r", cfg).close()
    dead = subprocess.Popen(["true"])
    dead.wait()
    # an orphan of the dead process still holds the lock file through an inherited descriptor
    fd = os.open(tmp_path / "r" / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, str(dead.pid).encode())
    try:
        with RunStore(tmp_path / "r", cfg):
            assert read_holder(tmp_path / "r" / ".lock").pid == os.getpid()
    finally:
        os.close(fd)


FORK_AND_DIE = textwrap.dedent("""
    import os, sys, time
    from lth_plugins import RunStore, LotteryConfig
    store = RunStore(sys.argv[1], {"lottery": LotteryConfig().to_dict(), "task": "t"})
    if os.fork() == 0:   # a framework worker: outlives its parent
        time.sleep(60)
        os._exit(0)
    print("ready", flush=True)
    time.sleep(60)
""")


def test_a_forked_child_does_not_keep_the_lock_of_its_killed_parent(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", FORK_AND_DIE, str(tmp_path / "r")], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(RunStoreError, match="in use by another process"):
            RunStore(tmp_path / "r", {"lottery": LotteryConfig().to_dict(), "task": "t"})
        proc.kill()
        proc.wait()
        RunStore(tmp_path / "r", {"lottery": LotteryConfig().to_dict(), "task": "t"}).close()
    finally:
        os.killpg(proc.pid, 9)


def test_a_closed_or_collected_run_can_be_reopened_in_the_same_process(tmp_path):
    cfg = LotteryConfig(rounds=1)
    with LotteryRun(cfg, tmp_path / "r", task="t", framework="torch"):
        pass
    run = LotteryRun(cfg, tmp_path / "r", task="t", framework="torch")
    del run
    gc.collect()
    LotteryRun(cfg, tmp_path / "r", task="t", framework="torch").close()


def test_status_tells_a_killed_run_from_a_running_one(tmp_path):
    run = LotteryRun(LotteryConfig(rounds=2), tmp_path / "r", task="t", framework="torch")
    run.open_round(0, mlp())
    assert round_rows(RunStore(tmp_path / "r"))[0]["state"] == "in progress"
    run.close()  # what a kill leaves: an unfinished round, nobody holding the run
    assert round_rows(RunStore(tmp_path / "r"))[0]["state"] == "interrupted"


# --- masks that mean what they say --------------------------------------------------------------------------
def test_every_header_edit_of_a_mask_file_is_a_mask_error_naming_it(tmp_path):
    params = select_parameters(mlp())
    path = tmp_path / "m.lthm"
    Mask((n, torch.rand(p.shape) > 0.5) for n, p in params.items()).save(path)
    data = path.read_bytes()
    hlen = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "little")
    for i in range(len(MAGIC) + 8 + hlen):
        for new in {data[i] ^ 0x01, ord(" ") if data[i] != ord(" ") else ord("1")}:
            path.write_bytes(data[:i] + bytes([new]) + data[i + 1:])
            with pytest.raises(MaskError, match=str(path)):
                Mask.load(path)


def test_pruners_keep_exactly_survivors():
    torch.manual_seed(0)
    w = {"w": torch.randn(750)}
    for pruner in (GlobalMagnitude(), LayerwiseMagnitude(), RandomPruner(seed=1)):
        mask = Mask.ones(w)
        pruner.prune(w, mask, (1 - 0.9) ** 2)
        assert mask.num_surviving() == survivors(750, 0.9, 2) == 7


class Gain(nn.Module):
    """A module with bare parameters and no reset_parameters."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.scale = nn.Parameter(torch.full((6,), 0.5))
        self.offset = nn.Parameter(torch.randn(6))

    def forward(self, x):
        return self.lin(x) * self.scale + self.offset


def test_random_ticket_redraws_bare_parameters_by_a_recorded_rule(tmp_path):
    torch.manual_seed(0)
    model = Gain()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    wt_cfg = LotteryConfig(rounds=2, reset="init", exclude=("scale", "offset"))  # never zeroed by a mask
    with LotteryRun(wt_cfg, tmp_path / "wt", task="t", framework="torch", model=model) as run:
        for k in run.pending_rounds():
            r = run.open_round(k, model)
            with torch.no_grad():  # "training": every weight moves
                for p in model.parameters():
                    p.add_(torch.randn_like(p))
            r.finish({"m": 0.0}, primary="m", higher_is_better=True)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    rt_model = Gain()  # built as the winning run's was
    rt_cfg = LotteryConfig(rounds=2, ticket="random", masks_from=str(tmp_path / "wt"), exclude=("scale", "offset"))
    with LotteryRun(rt_cfg, tmp_path / "rt", task="t", framework="torch", model=rt_model) as rt:
        rt_model.load_state_dict(trained)  # as if it had been trained in this process before round 1
        rt.store.save_snapshot("init", init)
        r = rt.open_round(1, rt_model)
        assert torch.equal(rt_model.scale, init["scale"])  # a constant init stays its init value
        off = rt_model.offset.detach()
        assert torch.equal(off.sort().values, init["offset"].sort().values)  # same values ...
        assert not torch.equal(off, init["offset"]) and not torch.equal(off, trained["offset"])  # ... re-drawn
        r.finish({"m": 0.0}, primary="m", higher_is_better=True)
        rules = rt.store.read_round(1).reinit
    assert rules == {"lin.weight": "reset_parameters", "lin.bias": "reset_parameters", "scale": "constant",
                     "offset": "permuted"}


def test_a_gradient_changed_in_place_after_backward_does_not_revive_pruned_weights():
    torch.manual_seed(0)
    model = mlp()
    params = select_parameters(model)
    mask = Mask((n, torch.rand(p.shape) > 0.5) for n, p in params.items())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    enforcer = MaskEnforcer(params, mask, opt)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(16, 8)).pow(2).mean().backward()
        for p in model.parameters():
            p.grad.add_(torch.randn_like(p.grad))  # gradient noise, in place
        opt.step()
    for n, p in params.items():
        assert not p[~mask[n]].any(), n
    enforcer.remove()


def test_a_lone_include_string_is_one_pattern():
    cfg = LotteryConfig(include="0.*", exclude="*.bias")
    assert cfg.include == ("0.*",) and cfg.exclude == ("*.bias",)
    assert list(select_parameters(mlp(), cfg.include, cfg.exclude)) == ["0.weight"]


# --- small things a user meets ------------------------------------------------------------------------------
def test_store_files_follow_the_umask(wt):
    for p in Path(wt).rglob("*"):
        if p.is_file() and p.name != ".lock":
            mode = stat.S_IMODE(p.stat().st_mode)
            assert mode == 0o666 & ~0o022 or mode & 0o044 == 0o044, (p, oct(mode))


def test_the_last_round_says_where_to_look_at_the_run(tmp_path, capsys):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with LotteryRun(LotteryConfig(rounds=1, rate=0.5, reset="init"), tmp_path / "run", task="t",
                    framework="torch") as run:
        for k in run.pending_rounds():
            with run.round(k, model) as r:
                r.finish({"acc": 1.0}, primary="acc", higher_is_better=True)
            said = capsys.readouterr().err.strip().splitlines()
            assert ("every round is finished" in said[-1]) == (k == 1), said
    assert said[-1].endswith(f"the table: lth status {tmp_path / 'run'}; the figures: lth report "
                             f"{tmp_path / 'run'} -o REPORT_DIR"), said


def test_progress_lines_within_a_round_show_rate_and_eta():
    out, now = io.StringIO(), [0.0]
    progress = RoundProgress(0, 3, stream=out, clock=lambda: now[0])
    progress.update_interval_s = 0.05
    progress.start(1, 0.2)
    for n in range(1, 8):
        progress.update(n, total_updates=100)
        now[0] += 0.02  # one update every 20 ms: a line every third update at most
    lines = [ln for ln in out.getvalue().splitlines() if "update" in ln]
    assert len(lines) == 2, lines
    assert "/100" in lines[-1] and "50.00 updates/s" in lines[-1] and "round ETA 0:02" in lines[-1]
