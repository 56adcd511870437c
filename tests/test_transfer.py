"""Ticket transfer: a winning ticket found on one task trained on another (`transfer_from`): round k trains the
source's round-k mask from the source's reset weights; only the architecture must match."""
import json
import multiprocessing
import os
import re
import time

import pytest
import torch

from lth_plugins.demo import BATCH, LR, build_parser, make_data, make_model, run_ticket, train_round
from lth_plugins.errors import LotteryConfigError, MaskError, RunStoreError
from lth_plugins.hparams import LotteryConfig, Ticket
from lth_plugins.report import build_report
from lth_plugins.report.anatomy import mask_overlap
from lth_plugins.run import LotteryRun
from lth_plugins.selection import select_parameters
from lth_plugins.sources import masks_available
from lth_plugins.store import RunStore, Snapshot

from .waiting import start_thread, wait_for_stderr

KW = dict(epochs=2, n_train=256)
TOTAL_UPDATES = 2 * (256 // BATCH)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The winning run of the source task (teacher seed 0)."""
    return run_ticket(LotteryConfig(rounds=2, rate=0.5, late_reset="1ep"), tmp_path_factory.mktemp("de") / "wt",
                      seed=0, **KW)


def transfer(source, **kw) -> LotteryConfig:
    return LotteryConfig(**{"rounds": 2, "rate": 0.5, "transfer_from": str(source), "seed": 1, **kw})


def open_target(config, run_dir, model, task="teacher-mlp-b"):
    """The target: another task, another seed, another init."""
    return LotteryRun(config, run_dir, task=task, framework="torch", settings={"seed": 1, "teacher": 1},
                      total_epochs=2, total_updates=TOTAL_UPDATES, model=model)


def adam(model):
    return lambda: torch.optim.Adam(model.parameters(), lr=LR)


def test_the_flag_alone_makes_a_transferred_ticket_and_its_round_is_parsed():
    args = build_parser().parse_args(["--run-dir", "x", "--lottery-transfer-from", "runs/de/wt:3",
                                      "--lottery-rounds", "4", "--lottery-transfer-keep-dense", "4.*"])
    config = LotteryConfig.from_namespace(args, run_seed=0).validate()
    assert config.ticket is Ticket.TRANSFERRED and config.source_dir == os.path.abspath("runs/de/wt")
    # a source is one run however it is spelled: stored absolute, so a rerun and a report from elsewhere agree
    assert LotteryConfig(transfer_from="./runs/de//wt/:3").to_dict() == config.to_dict() | {
        "rounds": 20, "transfer_keep_dense": []}
    assert LotteryConfig(ticket="random", masks_from="runs/de/wt/").masks_from == config.source_dir
    assert config.first_round == 3 and config.transfer_keep_dense == ("4.*",)
    with pytest.raises(LotteryConfigError, match=r"starts at round 3, after the last round 2 \(rounds, "
                                                 r"--lottery-rounds\): give --lottery-rounds 3 or more \(the "
                                                 r"source needs masks that far\), or start at an earlier round"):
        LotteryConfig(transfer_from="runs/de/wt:3", rounds=2).validate()
    with pytest.raises(LotteryConfigError, match="transfer_from makes a transferred ticket; it cannot be a random"):
        LotteryConfig(transfer_from="runs/de/wt", ticket="random", masks_from="runs/de/wt").validate()
    with pytest.raises(LotteryConfigError, match="transfer_keep_dense is only used by transferred tickets"):
        LotteryConfig(transfer_keep_dense=("4.*",)).validate()


def test_round_k_trains_the_sources_mask_from_its_reset_weights_bit_for_bit(source, tmp_path):
    theirs = RunStore(source)
    model = make_model(1)  # this run's own init differs from the source's
    with open_target(transfer(source), tmp_path / "tt", model) as run:
        assert list(run.pending_rounds()) == [1, 2]  # no dense round of its own
        for k in (1, 2):
            with run.round(k, model, optimizer=adam(model)) as r:
                mask, late = theirs.load_mask(k), theirs.load_snapshot(Snapshot.LATE)
                assert r.start.update == theirs.read_snapshot_meta(Snapshot.LATE)["update"] and r.start.state == {}
                assert set(r.mask) == set(mask)
                for name, p in select_parameters(model).items():
                    assert torch.equal(r.mask[name], mask[name])
                    assert torch.equal(p.detach(), late[name] * mask[name])
                out = train_round(r, model, make_data(1, n_train=256, n_test=128), 2, batch=BATCH, lr=LR, seed=1)
                r.finish({"test_accuracy": out["test_accuracy"]}, primary="test_accuracy", higher_is_better=True)
    mine = RunStore(tmp_path / "tt")
    assert mine.finished_rounds() == [1, 2] and mine.read_round(2).ticket == "transferred"
    assert mine.read_sparsity(2)["density"] == theirs.read_sparsity(2)["density"]


def test_a_source_of_other_shapes_is_refused_naming_the_parameter_and_nothing_is_written(source, tmp_path):
    other = make_model(1, classes=4)  # another game's action head: 4 outputs where the source has 8
    with pytest.raises(LotteryConfigError, match=r"'4.weight' has shape \[4, 128\] here but \[8, 128\] in the "
                                                 r"transfer source .* \(--lottery-transfer-keep-dense PATTERN\): "
                                                 r"4.weight, 4.bias$"):
        open_target(transfer(source), tmp_path / "tt", other)
    assert not (tmp_path / "tt").exists()
    with pytest.raises(LotteryConfigError, match=r"'0.weight' has shape \[64, 32\] here .*; 5 parameters differ in "
                                                 r"shape: the architectures differ$"):
        open_target(transfer(source), tmp_path / "tt", make_model(1, hidden=64))  # no head to keep dense
    assert not (tmp_path / "tt").exists()
    with pytest.raises(MaskError, match=r"mask of round 1 in the transfer source .* \(its include/exclude must be "
                                        r"this run's\) does not match the parameters this run prunes: mask for "
                                        r"parameters this run does not prune \(not in the model, or left out by "
                                        r"its include/exclude\): 4.bias"):
        open_target(transfer(source, exclude=("4.bias",)), tmp_path / "tt", make_model(1))
    assert not (tmp_path / "tt").exists()
    # a start past the source's last mask: the source is what falls short, not this run's rounds
    available = masks_available(RunStore(source))
    with pytest.raises(LotteryConfigError, match=rf"starts at round {available + 2}, but the source .* has masks up "
                                                 rf"to round {available}: start at round {available} or earlier"):
        open_target(transfer(source, transfer_from=f"{source}:{available + 2}", rounds=available + 2),
                    tmp_path / "tt", make_model(1))
    assert not (tmp_path / "tt").exists()
    deeper = torch.nn.Sequential(*make_model(1), torch.nn.Linear(8, 8))
    with pytest.raises(LotteryConfigError, match="'5.weight' of this model is not in the transfer source"):
        open_target(transfer(source, transfer_keep_dense=("5.*",)), tmp_path / "tt", deeper)
    assert not (tmp_path / "tt").exists()


def test_parameters_kept_dense_start_from_this_runs_init_and_are_not_pruned(source, tmp_path):
    model = make_model(1, classes=4)
    own = {n: p.detach().clone() for n, p in model.named_parameters()}
    with open_target(transfer(source, transfer_keep_dense=("4.*",)), tmp_path / "tt", model) as run:
        with run.round(2, model, optimizer=adam(model)) as r:
            late, mask = RunStore(source).load_snapshot(Snapshot.LATE), RunStore(source).load_mask(2)
            assert set(r.mask) == {"0.weight", "0.bias", "2.weight", "2.bias"}
            for name, p in model.named_parameters():
                if name.startswith("4."):
                    assert torch.equal(p.detach(), own[name])  # dense, its own init
                else:
                    assert torch.equal(p.detach(), late[name] * mask[name])


def test_a_missing_source_round_is_waited_for_then_used(source, tmp_path, capsys):
    src = RunStore(source)
    hidden = tmp_path / "mask2"
    src.mask_path(2).rename(hidden)  # as if the source were still training round 1
    errors = []
    try:
        with RunStore(source, src.config):  # the source's process is alive: hold its lock
            thread = start_thread(errors, run_ticket, transfer(source, mask_wait=300), tmp_path / "tt", seed=1, **KW)
            waiting = f"waiting up to 300 s for the mask of round 2 from the winning-ticket run {source}"
            err = wait_for_stderr(capsys, waiting, thread)
            assert waiting in err, (err, errors)
            assert RunStore(tmp_path / "tt").finished_rounds() == [1]
            hidden.rename(src.mask_path(2))  # the source finishes round 1
            thread.join(timeout=300)
    finally:
        if hidden.exists():
            hidden.rename(src.mask_path(2))
    assert not thread.is_alive() and not errors, errors
    assert RunStore(tmp_path / "tt").finished_rounds() == [1, 2]
    assert RunStore(tmp_path / "tt").read_round(2).surviving == src.read_round(2).surviving


def _killed_in_round_2(source, run_dir):
    """The torch demo's command, dying in the middle of round 2 (no clean-up, as a killed process)."""
    import lth_plugins.demo as demo

    def train_or_die(r, model, data, epochs, **kw):
        if r.k == 2:
            r.after_update(r.first_update)
            os._exit(9)
        return train_round(r, model, data, epochs, **kw)

    torch.set_num_threads(1)
    demo.train_round = train_or_die
    run_ticket(transfer(source), run_dir, seed=1, **KW)


def test_a_killed_transferred_run_continues_with_the_same_command(source, tmp_path):
    run_dir = tmp_path / "tt"
    child = multiprocessing.get_context("fork").Process(target=_killed_in_round_2, args=(source, run_dir))
    child.start()
    child.join(timeout=300)
    assert child.exitcode == 9
    store = RunStore(run_dir)
    assert store.finished_rounds() == [1] and store.read_started(2) is not None
    first = store.metrics_path(1).read_bytes()
    run_ticket(transfer(source), run_dir, seed=1, **KW)  # the same configuration, settings and task
    assert store.finished_rounds() == [1, 2] and store.metrics_path(1).read_bytes() == first
    assert store.read_round(2).ticket == "transferred"


def test_the_report_draws_a_transferred_ticket_in_its_own_colour_and_its_overlap_with_the_own_ticket(source,
                                                                                                      tmp_path):
    wt = run_ticket(LotteryConfig(rounds=2, rate=0.5, late_reset="1ep", seed=1), tmp_path / "wt", seed=1, **KW)
    tt = run_ticket(transfer(source, rate=0.2), tmp_path / "tt", seed=1, **KW)  # the masks' rate is the source's
    assert RunStore(tt).read_round(2).nominal_fraction_pruned == 0.75
    report = build_report([wt, tt], tmp_path / "report")
    drawn = report.drawn["figures/teacher-mlp_tickets.png"]["panels"][0]["series"]
    assert [(s["ticket"], s["color"]) for s in drawn] == [("winning", "tab:blue"), ("transferred", "tab:purple")]
    assert drawn[1]["label"] == "transferred ticket from teacher-mlp, 1 seed" and drawn[1]["rounds"] == [1, 2]
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert "transferred tickets (purple" in data["tasks"][0]["figures"][0]["caption"]
    assert data["tasks"][0]["rates"] == [0.5]
    [curve] = [c for c in data["anatomy"][0]["overlaps"] if c["kind"] == "transfer"]
    assert curve["label"] == "transferred ticket from teacher-mlp vs this task's own winning ticket"
    for i, k in enumerate((1, 2)):
        expected = mask_overlap(RunStore(source).load_mask(k), RunStore(wt).load_mask(k))
        assert curve["values"][i] == [expected.iou] and curve["chance"][i] == expected.chance_iou
        assert 0 < expected.iou < 1 and expected.iou != expected.chance_iou
    # a task whose only runs are transferred tickets: its caption tells their late-reset budget too
    build_report([tt], tmp_path / "alone")
    caption = json.loads((tmp_path / "alone" / "report.json").read_text())["tasks"][0]["figures"][0]["caption"]
    assert "after the late reset at update j" in caption.lower() and "reset to init" not in caption


def test_status_plans_a_transferred_tickets_rounds_at_its_sources_rate(source, tmp_path):
    from lth_plugins.hparams import fraction_pruned
    from lth_plugins.status import round_rows

    with open_target(transfer(source, rate=0.2), tmp_path / "tt", make_model(1)):
        pass  # the configuration written, no round trained
    planned = {row["round"]: row["fraction_pruned"] for row in round_rows(RunStore(tmp_path / "tt"))}
    assert planned == {k: fraction_pruned(RunStore(source).lottery.rate, k) for k in (1, 2)} != \
        {k: fraction_pruned(0.2, k) for k in (1, 2)}


def test_a_round_that_is_no_number_and_a_source_that_is_no_winning_run_are_named(source, tmp_path):
    with pytest.raises(LotteryConfigError, match="ROUND in RUN_DIR:ROUND is a round number >= 1"):
        LotteryConfig(transfer_from=f"{source}:x").validate()
    rt = run_ticket(LotteryConfig(rounds=1, rate=0.5, late_reset="1ep", ticket="random", masks_from=str(source)),
                    tmp_path / "rt", seed=0, **KW)
    with pytest.raises(RunStoreError, match=r"the winning-ticket run \(transfer_from, --lottery-transfer-from\) "
                                            r".*rt is a random ticket's run: give a winning-ticket run"):
        open_target(transfer(rt), tmp_path / "tt", make_model(1))
    assert not (tmp_path / "tt").exists()
    # a folder that cannot be a starting run is refused at once, not waited for (mask_wait is a week)
    data = tmp_path / "data"
    data.mkdir()
    (data / "dict.en.txt").write_text("a 1\n")
    for folder, said in ((source / "round_01", f"is a folder inside the run {source}, not a run directory: give "
                                               f"{source}"),
                         (data, "is not a lottery run directory: it holds dict.en.txt but no config.json")):
        t0 = time.monotonic()
        with pytest.raises(RunStoreError, match=re.escape(said)):
            open_target(transfer(folder, mask_wait=3600), tmp_path / "tt", make_model(1))
        assert time.monotonic() - t0 < 10 and not (tmp_path / "tt").exists()
