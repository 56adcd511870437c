"""The shuffled ticket, a control: the winning ticket's per-layer densities at random positions within each layer,
reset to the winning run's snapshot; it separates "which layers keep how much" from "which weights"."""
import pytest
import torch

from lth_plugins.demo import make_model, run_ticket
from lth_plugins.errors import LotteryConfigError
from lth_plugins.hparams import LotteryConfig, Ticket
from lth_plugins.mask_plan import shuffled
from lth_plugins.masks import Mask
from lth_plugins.run import LotteryRun
from lth_plugins.selection import select_parameters
from lth_plugins.store import RunStore, Snapshot

KW = dict(seed=0, epochs=2, n_train=256)
SETTINGS = {"seed": 0, "epochs": 2, "n_train": 256}


@pytest.fixture(scope="module")
def wt(tmp_path_factory):
    return run_ticket(LotteryConfig(rounds=2, rate=0.5, late_reset="1ep"), tmp_path_factory.mktemp("runs") / "wt",
                      **KW)


def shuffled_config(wt, seed=0):
    return LotteryConfig(rounds=2, rate=0.5, ticket=Ticket.SHUFFLED, masks_from=str(wt), seed=seed)


def test_shuffling_keeps_each_layers_count_moves_the_positions_and_is_seeded():
    torch.manual_seed(0)
    mask = Mask((n, torch.rand(p.shape) > 0.7) for n, p in select_parameters(make_model(0)).items())
    a, b, c = shuffled(mask, 0, 1), shuffled(mask, 0, 1), shuffled(mask, 1, 1)
    for name, m in mask.items():
        assert int(a[name].sum()) == int(m.sum()) and a[name].shape == m.shape
        assert torch.equal(a[name], b[name])  # seeded: the same draw again
        if 0 < int(m.sum()) < m.numel():
            assert not torch.equal(a[name], m) and not torch.equal(a[name], c[name])


def test_a_shuffled_ticket_trains_the_winning_densities_from_the_winning_snapshot(wt, tmp_path):
    model = make_model(0)
    with LotteryRun(shuffled_config(wt), tmp_path / "st", task="teacher-mlp", framework="torch", settings=SETTINGS,
                    total_epochs=2, total_updates=4, model=model) as run:
        with run.round(1, model, optimizer=lambda: torch.optim.Adam(model.parameters())) as r:
            late = RunStore(wt).load_snapshot(Snapshot.LATE)
            winning = RunStore(wt).load_mask(1)
            assert r.start.update == RunStore(wt).read_snapshot_meta(Snapshot.LATE)["update"]
            for name, p in select_parameters(model).items():
                keep = r.mask[name]
                assert int(keep.sum()) == int(winning[name].sum())  # per-layer density of the winning ticket
                assert torch.equal(p.detach(), late[name] * keep)  # its weights: the winning run's snapshot
            assert any(not torch.equal(r.mask[n], winning[n]) for n in winning.keys())


def test_a_shuffled_run_is_recorded_as_its_own_kind_beside_the_winning_ticket(wt, tmp_path):
    st = run_ticket(shuffled_config(wt), tmp_path / "st", **KW)
    store = RunStore(st)
    assert store.finished_rounds() == [1, 2] and store.lottery.ticket is Ticket.SHUFFLED
    for k in (1, 2):
        mine, theirs = store.read_round(k), RunStore(wt).read_round(k)
        assert mine.ticket == "shuffled" and mine.surviving == theirs.surviving and mine.reinit is None
        assert store.read_sparsity(k)["density"] == RunStore(wt).read_sparsity(k)["density"]


def test_a_shuffled_ticket_needs_a_winning_run(tmp_path):
    with pytest.raises(LotteryConfigError, match="a shuffled ticket needs the winning ticket's masks"):
        LotteryConfig(ticket=Ticket.SHUFFLED).validate()


def test_a_shuffled_ticket_of_other_settings_is_refused_by_its_own_name(wt, tmp_path):
    other = LotteryConfig(rounds=2, rate=0.2, ticket=Ticket.SHUFFLED, masks_from=str(wt))
    with pytest.raises(LotteryConfigError, match=r"the shuffled ticket must train as the winning run .* did"):
        run_ticket(other, tmp_path / "st", **KW)
    assert not (tmp_path / "st").exists()
