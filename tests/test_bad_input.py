"""Each bad input gets one clear error naming the problem, and nothing already on disk changes."""
import pytest
import torch

from lth_plugins import LotteryConfig, LotteryRun, Mask, RunStore
from lth_plugins.errors import LotteryConfigError, MaskError, RunStoreError
from lth_plugins.registry import load_pruner, load_reset
from lth_plugins.selection import select_parameters

from .models import all_models


def snapshot_files(path):
    return {p: p.read_bytes() for p in path.rglob("*") if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("rate", [0.0, 1.0, 1.5, -0.2])
def test_prune_rate_outside_open_interval(rate):
    with pytest.raises(LotteryConfigError, match="prune rate must lie strictly between 0 and 1"):
        LotteryConfig(rate=rate).validate()


@pytest.mark.parametrize("rounds", [0, -3])
def test_rounds_below_one(rounds):
    with pytest.raises(LotteryConfigError, match="rounds must be an integer >= 1"):
        LotteryConfig(rounds=rounds).validate()


@pytest.mark.parametrize("spec,kw,msg", [
    ("1000u", {"total_updates": 1000}, "beyond the training length of 1000 updates"),
    ("3ep", {"total_epochs": 2}, "beyond the training length of 2 epochs"),
    ("soon", {}, "late reset point 'soon' is not understood"),
])
def test_late_reset_point_beyond_training_or_malformed(spec, kw, msg):
    with pytest.raises(LotteryConfigError, match=msg):
        LotteryConfig(late_reset=spec).validate(**kw)


def test_unknown_pruner_and_reset_list_the_available_ones():
    with pytest.raises(LotteryConfigError, match="unknown pruner 'magic'; available: global_magnitude"):
        LotteryConfig(pruner="magic").validate()
    with pytest.raises(LotteryConfigError, match="unknown reset 'rewind'; available: init, late, random"):
        load_reset("rewind")
    with pytest.raises(LotteryConfigError, match="available: .*layerwise_magnitude"):
        load_pruner("nope")


def test_random_ticket_without_masks():
    with pytest.raises(LotteryConfigError, match="random ticket needs the winning ticket's masks"):
        LotteryConfig(ticket="random").validate()


def test_patterns_selecting_nothing():
    model = all_models()["mlp"]
    with pytest.raises(LotteryConfigError, match=r"include pattern 'encoder\.\*' matches no parameter"):
        select_parameters(model, include=["encoder.*"])
    with pytest.raises(LotteryConfigError, match=r"exclude pattern 'embed\*' matches no parameter"):
        select_parameters(model, exclude=["embed*"])
    with pytest.raises(LotteryConfigError, match="leave no parameter to prune"):
        select_parameters(model, exclude=["*"])


def test_patterns_selecting_nothing_stop_a_run_before_anything_is_written(tmp_path):
    from lth_plugins.demo import run_ticket
    with pytest.raises(LotteryConfigError, match="include pattern 'decoder.*' matches no parameter"):
        run_ticket(LotteryConfig(include=("decoder.*",)), tmp_path / "run", epochs=2, n_train=64)
    assert not (tmp_path / "run").exists()


def test_mask_whose_names_or_shapes_do_not_match_the_model():
    model = all_models()["mlp"]
    params = select_parameters(model)
    mask = Mask.ones(params)
    other = Mask.ones(select_parameters(all_models()["lstm"]))
    with pytest.raises(MaskError, match="no mask for 0.weight"):
        other.check_matches(params)
    mask["2.weight"] = torch.ones(3, 3, dtype=torch.bool)
    with pytest.raises(MaskError, match=r"shape mismatch: 2.weight: mask \(3, 3\) vs model \(32, 32\)"):
        mask.check_matches(params)


def test_truncated_and_corrupted_mask_files_name_the_file(tmp_path):
    params = select_parameters(all_models()["lstm"])
    path = tmp_path / "mask.lthm"
    Mask.ones(params).save(path)
    data = path.read_bytes()
    assert Mask.load(path).num_surviving() == Mask.ones(params).num_selected()
    path.write_bytes(data[:-10])
    with pytest.raises(MaskError, match=f"mask file {path} is truncated"):
        Mask.load(path)
    path.write_bytes(data[:-10] + b"\x00" * 10)
    with pytest.raises(MaskError, match=f"mask file {path} is corrupted"):
        Mask.load(path)
    path.write_bytes(data[:20])
    with pytest.raises(MaskError, match=f"mask file {path}"):
        Mask.load(path)
    path.write_bytes(b"PK\x03\x04 not a mask")
    with pytest.raises(MaskError, match=f"mask file {path} is not a lottery mask file"):
        Mask.load(path)


def test_run_dir_with_a_corrupted_mask_fails_naming_it_and_keeps_files(tmp_path):
    from lth_plugins.demo import run_ticket
    cfg = LotteryConfig(rounds=2, late_reset="1ep")
    run_dir = run_ticket(cfg, tmp_path / "wt", epochs=2, n_train=256)
    mask2 = run_dir / "round_02" / "mask.lthm"
    (run_dir / "round_02" / "metrics.json").unlink()  # round 2 must run again, from its mask
    mask2.write_bytes(mask2.read_bytes()[:-3])
    before = snapshot_files(run_dir)
    with pytest.raises(MaskError, match=str(mask2)):
        run_ticket(cfg, run_dir, epochs=2, n_train=256)
    assert snapshot_files(run_dir) == before


def test_not_a_run_directory(tmp_path):
    with pytest.raises(RunStoreError, match="is not a lottery run directory"):
        RunStore(tmp_path)


def test_random_ticket_from_a_missing_or_random_run(tmp_path):
    with pytest.raises(RunStoreError, match="is not a lottery run directory"):
        LotteryRun(LotteryConfig(ticket="random", masks_from=str(tmp_path / "nothing")), tmp_path / "rt",
                   task="t", framework="torch")
    assert not (tmp_path / "rt").exists()
