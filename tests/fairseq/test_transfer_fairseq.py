"""fairseq-train --lottery-transfer-from: a winning ticket of another run trained in this one, validated against
fairseq's model before anything is written."""
import torch

from .helpers import MT_MODEL, fairseq_train, load_ckpt, load_mask, metrics


def test_a_transferred_ticket_trains_the_sources_round_and_refuses_another_architecture(mt_winning, mt_data,
                                                                                         tmp_path):
    wt, _ = mt_winning
    other = tmp_path / "other"
    proc = fairseq_train(mt_data, other, *MT_MODEL, "--encoder-ffn-embed-dim", "48", "--max-update", "40",
                         "--lottery-prune", "--lottery-rounds", "2", "--lottery-transfer-from", str(wt), check=False)
    assert proc.returncode != 0
    assert ("'encoder.layers.0.fc1.weight' has shape [48, 32] here but [64, 32] in the transfer source"
            in proc.stdout), proc.stdout[-3000:]
    assert not other.exists() or not any(other.iterdir())
    tt = tmp_path / "tt"
    # another seed and learning rate than the source's: a random ticket would be refused, a transferred one is not
    model = [("0.004" if a == "0.005" else a) for a in MT_MODEL]
    fairseq_train(mt_data, tt, *model, "--seed", "2", "--max-update", "40", "--lottery-prune", "--lottery-rounds",
                  "2", "--lottery-transfer-from", f"{wt}:2")
    assert not (tt / "round_00").exists() and not (tt / "round_01").exists()  # :2 starts at round 2
    rec, theirs = metrics(tt, 2), metrics(wt, 2)
    assert rec["ticket"] == "transferred" and rec["surviving"] == theirs["surviving"]
    assert rec["start"]["update"] == 10 and rec["end_update"] == 40  # the source's late point: --lottery-late-reset 10u
    state = load_ckpt(tt / "round_02" / "checkpoint_last.pt")["model"]
    for n, m in load_mask(wt, 2).items():
        assert torch.all(state[n][~m] == 0)


def test_a_transfer_source_that_is_no_winning_run_is_named_by_its_own_flag(tmp_path):
    import pytest

    from fairseq_ext import options
    from lth_plugins import LotteryConfig, RunStore
    from lth_plugins.errors import LotteryConfigError

    rt = tmp_path / "rt"
    RunStore(rt, {"lottery": LotteryConfig(ticket="random", masks_from=str(tmp_path / "wt")).to_dict()}).close()
    with pytest.raises(LotteryConfigError) as e:
        options._check_masks_from(str(rt), "transfer_from")
    assert str(e.value) == (f"the winning-ticket run (transfer_from, --lottery-transfer-from) {rt} is a random "
                            f"ticket's run: give a winning-ticket run")
    (rt / "round_01").mkdir()
    with pytest.raises(LotteryConfigError) as e:
        options._check_masks_from(str(rt / "round_01"), "transfer_from")
    assert str(e.value) == (f"the winning-ticket run (transfer_from, --lottery-transfer-from) {rt / 'round_01'} is a "
                            f"folder inside the run {rt}, not a run directory: give {rt}")
