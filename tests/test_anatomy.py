"""Ticket anatomy in `lth report`: per-layer sparsity, mask overlap against its chance line, sign agreement."""
import json
from pathlib import Path

import pytest
import torch

from lth_plugins import demo
from lth_plugins.errors import LotteryError
from lth_plugins.hparams import LotteryConfig
from lth_plugins.masks import Mask
from lth_plugins.record import RoundRecord, sparsity_report
from lth_plugins.report import build_report
from lth_plugins.report.anatomy import (chance_intersection, chance_iou, kept_counts, layer_rounds, mask_overlap,
                                        sign_agreement)
from lth_plugins.report.collect import load_run
from lth_plugins.store import RunStore

PNG = b"\x89PNG\r\n\x1a\n"


def mask(**layers) -> Mask:
    return Mask((n, torch.tensor(v, dtype=torch.bool)) for n, v in layers.items())


# --- overlap and its chance line ---------------------------------------------------------------------------------
def test_overlap_of_hand_made_masks():
    a = mask(w=[1, 1, 0, 0], v=[1, 1, 1, 0, 0, 0])
    b = mask(w=[1, 0, 1, 0], v=[0, 1, 1, 1, 0, 0])
    o = mask_overlap(a, b)
    # w: 1 kept by both of 3 kept by either; v: 2 of 4
    assert o.layers == {"w": pytest.approx(1 / 3), "v": pytest.approx(2 / 4)}
    assert o.iou == pytest.approx(3 / 7)
    # chance: w 2*2/4 = 1 of 2+2-1; v 3*3/6 = 1.5 of 3+3-1.5; together 2.5 / (10 - 2.5)
    assert o.chance_layers == {"w": pytest.approx(1 / 3), "v": pytest.approx(1 / 3)}
    assert o.chance_iou == pytest.approx(1 / 3)
    assert mask_overlap(a, a).iou == 1.0

    empty = mask(w=[0, 0, 0, 0], v=[1, 1, 1, 0, 0, 0])
    o = mask_overlap(empty, empty)
    assert o.layers["w"] is None and o.chance_layers["w"] is None and o.layers["v"] == 1.0
    with pytest.raises(LotteryError, match="different parameters"):
        mask_overlap(a, mask(w=[1, 1, 0, 0]))


def test_chance_line_closed_form_by_hand():
    assert chance_intersection(10, 5, 4) == 2.0
    # two layers: E|A∩B| = 5*4/10 + 10*50/100 = 7; |A| + |B| = 15 + 54
    counts_a = {"x": (5, 10), "y": (10, 100)}
    counts_b = {"x": (4, 10), "y": (50, 100)}
    assert chance_iou(counts_a, counts_b) == pytest.approx(7 / 62)
    assert chance_iou({"x": (10, 10)}, {"x": (3, 10)}) == pytest.approx(3 / 10)  # a full layer holds all of B
    assert chance_iou({"x": (0, 10)}, {"x": (0, 10)}) is None


def test_chance_line_against_a_seeded_simulation():
    """Random masks with fixed per-layer counts: the mean intersection is k1*k2/n per layer, and the mean IoU is
    the closed form's ratio of expectations up to Jensen's small excess."""
    g = torch.Generator().manual_seed(0)
    layers = {"embed": (1000, 300, 600), "fc": (5000, 500, 1000)}   # n, k1, k2
    draws = 1000

    def random_masks(n, k):
        """`draws` masks keeping k of n weights each, uniformly: the k smallest of n uniform numbers."""
        r = torch.rand(draws, n, generator=g)
        return r <= r.kthvalue(k, dim=1).values[:, None]

    inter = torch.zeros(draws)
    kept = 0
    for name, (n, k1, k2) in layers.items():
        both = (random_masks(n, k1) & random_masks(n, k2)).sum(dim=1).double()
        assert both.mean().item() == pytest.approx(chance_intersection(n, k1, k2), rel=0.02)
        inter += both
        kept += k1 + k2
    simulated = (inter / (kept - inter)).mean().item()
    closed = chance_iou({n: (k1, n_) for n, (n_, k1, _) in layers.items()},
                        {n: (k2, n_) for n, (n_, _, k2) in layers.items()})
    # E|∩| = 180 + 100 = 280 of 2400 kept: IoU = 280 / 2120
    assert closed == pytest.approx(280 / 2120)
    assert simulated == pytest.approx(closed, rel=0.01)

    # the closed form is what mask_overlap reports for two masks with these counts
    a = Mask((n, random_masks(n_, k1)[0]) for n, (n_, k1, _) in layers.items())
    b = Mask((n, random_masks(n_, k2)[0]) for n, (n_, _, k2) in layers.items())
    assert mask_overlap(a, b).chance_iou == pytest.approx(closed)


# --- sign agreement ------------------------------------------------------------------------------------------------
def test_sign_agreement_of_a_hand_made_case():
    reset = {"w": torch.tensor([1.0, -2.0, 3.0, 0.0, -1.0]), "b": torch.tensor([0.5, 0.5])}
    trained = {"w": torch.tensor([2.0, 2.0, -1.0, 5.0, -3.0]), "b": torch.tensor([0.1, 0.0])}
    m = mask(w=[1, 1, 0, 1, 1], b=[1, 1])
    # kept w: 1->2 same, -2->2 flipped, 0 (no sign at the reset point, left out), -1->-3 same; b: same, 0.0 not same
    assert sign_agreement(m, reset, trained) == pytest.approx(3 / 5)
    assert sign_agreement(mask(w=[0, 0, 1, 0, 0], b=[0, 0]), reset, trained) == 0.0
    assert sign_agreement(mask(w=[0, 0, 0, 1, 0], b=[0, 0]), reset, trained) is None
    with pytest.raises(LotteryError, match="lack"):
        sign_agreement(mask(x=[1]), reset, trained)


# --- per-layer sparsity per round ---------------------------------------------------------------------------------
def test_layer_sparsity_per_round_from_hand_made_masks(tmp_path):
    masks = {0: mask(w=[1, 1, 1, 1], v=[1, 1]), 1: mask(w=[1, 1, 1, 0], v=[1, 0]), 2: mask(w=[1, 0, 0, 0], v=[1, 0])}
    runs = []
    for seed, extra in ((0, {}), (1, {2: mask(w=[1, 1, 0, 0], v=[0, 0])})):
        cfg = LotteryConfig(rounds=2, rate=0.5, seed=seed)
        with RunStore(tmp_path / f"s{seed}", {"lottery": cfg.to_dict(), "framework": "torch", "task": "t",
                                               "settings": {"seed": seed}}) as store:
            for k, m in {**masks, **extra}.items():
                rec = RoundRecord(round=k, ticket="winning", fraction_pruned=1 - m.density(),
                                  surviving=m.num_surviving(), selected=m.num_selected(), primary="acc",
                                  higher_is_better=True, metrics={"acc": 1.0})
                store.write_round(k, rec, sparsity_report(k, m))
        runs.append(load_run(tmp_path / f"s{seed}"))
    lr = layer_rounds(runs)
    assert lr.names == ["v", "w"] and lr.numel == [2, 4] and lr.rounds == [0, 1, 2] and lr.seeds == 2
    # round 2: v pruned 1/2 (seed 0) and 2/2 (seed 1); w 3/4 and 2/4
    assert lr.pruned == [[0.0, 0.5, pytest.approx(0.75)], [0.0, 0.25, pytest.approx(0.625)]]
    assert lr.fraction_pruned == [0.0, pytest.approx(2 / 6), pytest.approx((4 / 6 + 4 / 6) / 2)]
    assert kept_counts(masks[2]) == {"w": (1, 4), "v": (1, 2)}


# --- lth report on real runs -----------------------------------------------------------------------------------------
def test_report_anatomy_of_real_demo_runs(tmp_path):
    """Two seeds of iterative winning tickets and a one-shot run reusing seed 0's dense round: heat map, overlaps
    between seeds and between schedules beside chance, sign agreement; figures in the folder and the HTML."""
    root = tmp_path / "runs"
    small = dict(epochs=1, n_train=1024)
    wts = [demo.run_ticket(LotteryConfig(rounds=2, rate=0.2, reset="init", seed=s), root / f"wt_s{s}", seed=s,
                           **small) for s in (0, 1)]
    os0 = demo.run_ticket(LotteryConfig(rounds=2, rate=0.2, reset="init", schedule="oneshot", seed=0,
                                        dense_from=str(wts[0])), root / "os_s0", seed=0, **small)
    out = tmp_path / "report"
    rep = build_report([*wts, os0], out)
    anatomy = json.loads((out / "report.json").read_text())["anatomy"]
    assert len(anatomy) == 1
    a = anatomy[0]
    files = a["files"]
    assert set(files) == {"layers", "overlap", "signs"}
    html = (out / "index.html").read_text()
    for f in files.values():
        assert f in rep.files and (out / f).read_bytes()[:8] == PNG and f"src='{f}'" in html

    # the heat map: the iterative seeds' sparsity.json, mean over the two seeds
    sp = [{k: json.loads((w / f"round_{k:02d}" / "sparsity.json").read_text())["density"] for k in range(3)}
          for w in wts]
    heat = rep.drawn[files["layers"]]
    assert heat["rounds"] == [0, 1, 2] and heat["parameters"] == list(sp[0][0])
    for i, name in enumerate(heat["parameters"]):
        assert heat["percent_pruned"][i] == pytest.approx([100 * (1 - (sp[0][k][name] + sp[1][k][name]) / 2)
                                                           for k in range(3)])

    masks = {(p.name, k): RunStore(p).load_mask(k) for p in (*wts, os0) for k in (1, 2)}
    seeds, schedules = a["overlaps"]
    assert (seeds["kind"], schedules["kind"]) == ("seeds", "schedules")
    assert seeds["fraction_pruned"] == pytest.approx([0.2, 0.36])
    for i, k in enumerate((1, 2)):
        o = mask_overlap(masks[("wt_s0", k)], masks[("wt_s1", k)])
        assert seeds["mean"][i] == pytest.approx(o.iou) and seeds["chance"][i] == pytest.approx(o.chance_iou)
        # seeds draw unrelated inits, so their weights' positions are unrelated: their masks overlap by chance
        assert o.iou == pytest.approx(o.chance_iou, abs=0.03) and o.iou < 0.9
    # round 1 of both schedules prunes the same dense weights by the same amount: identical masks
    assert schedules["mean"][0] == 1.0 and schedules["runs"] == [str(wts[0]), str(os0)]
    assert schedules["mean"][1] == pytest.approx(mask_overlap(masks[("wt_s0", 2)], masks[("os_s0", 2)]).iou)
    drawn = rep.drawn[files["overlap"]]["curves"]
    assert drawn[0]["y_mean"] == pytest.approx(seeds["mean"]) and drawn[0]["y_chance"] == pytest.approx(
        seeds["chance"])

    signs = a["sign_agreement"]
    assert "dense" in signs["note"] and "round 0" in signs["note"]
    iterative = next(c for c in signs["curves"] if c["label"].startswith("iterative"))
    snaps = [{kind: RunStore(w).load_snapshot(kind) for kind in ("init", "dense_trained")} for w in wts]
    expected = [sign_agreement(masks[(w.name, 2)], s["init"], s["dense_trained"]) for w, s in zip(wts, snaps)]
    assert iterative["fraction_pruned"] == pytest.approx([0.0, 0.2, 0.36])
    assert iterative["values"][2] == pytest.approx(expected)
    assert all(0.5 < v <= 1.0 for vs in iterative["values"] for v in vs)
    assert "Ticket anatomy" in html

    # the numbers behind the figures, readable in report.md and index.html: one row per curve and level
    md = (out / "report.md").read_text()
    assert "### Ticket anatomy" in md and f"![overlap]({files['overlap']})" in md
    for i, f in enumerate(("20.0", "36.0")):
        assert f"| {seeds['label']} | {f} | {seeds['mean'][i]:.4g} | 1 | {seeds['chance'][i]:.4g} |" in md
        assert (f"<td>{f}</td><td>{seeds['mean'][i]:.4g}</td><td>1</td><td>{seeds['chance'][i]:.4g}</td>"
                in html)
    n = len(iterative["values"][2])
    assert f"| {iterative['label']} | 36.0 |" in md and f"| {n} |" in md
    assert md.count(f"| {seeds['label']} |") == 2


def test_seed_overlaps_of_variants_that_prune_other_weights_say_which(tmp_path):
    small = dict(epochs=1, n_train=256)
    runs = [demo.run_ticket(LotteryConfig(rounds=1, rate=0.2, reset="init", seed=s, exclude=ex),
                            tmp_path / f"wt_{len(ex)}_s{s}", seed=s, **small) for ex in ((), ("4.*",)) for s in (0, 1)]
    build_report(runs, tmp_path / "report")
    anatomy = json.loads((tmp_path / "report" / "report.json").read_text())["anatomy"][0]
    assert [c["label"] for c in anatomy["overlaps"] if c["kind"] == "seeds"] == [
        "between seeds (iterative, reset to init; all weights pruned, 2 seeds)",
        "between seeds (iterative, reset to init; excluding 4.*, 2 seeds)"]
    assert [c["label"] for c in anatomy["sign_agreement"]["curves"]] == [
        "iterative, reset to init; all weights pruned: reset point vs trained dense weights",
        "iterative, reset to init; excluding 4.*: reset point vs trained dense weights"]


def test_runs_without_masks_get_the_heat_map_only(tmp_path):
    from tests.test_report import write_experiment

    dirs = write_experiment(tmp_path / "runs", seeds=(0, 1), rounds=3)
    rep = build_report(dirs, tmp_path / "out")
    a = json.loads((tmp_path / "out" / "report.json").read_text())["anatomy"][0]
    assert list(a["files"]) == ["layers"] and a["overlaps"] == [] and a["sign_agreement"]["curves"] == []
    assert a["layers"]["pruned"][0] == pytest.approx([1 - 0.8 ** (k * 1.2) for k in range(4)])
    assert "no sign agreement for wt_s0, wt_s1" in a["notes"][0]
    assert Path(tmp_path / "out" / a["files"]["layers"]).is_file() and a["files"]["layers"] in rep.files


def test_late_reset_tickets_compare_signs_with_the_late_snapshot(tmp_path):
    """A hand-written store of any framework (here ELF's): a late-reset ticket's surviving weights are compared
    with the late snapshot it resets to, not with init."""
    from lth_plugins.report.anatomy import plan_anatomy
    from lth_plugins.report.collect import collect

    trained = {"conv.weight": torch.tensor([1.0, -1.0, 2.0, -2.0]), "fc.weight": torch.tensor([0.5, -0.5])}
    late = {"conv.weight": torch.tensor([0.1, -0.1, -0.2, -0.2]), "fc.weight": torch.tensor([0.3, 0.3])}
    init = {n: -t for n, t in trained.items()}  # every sign flipped by training
    masks = {0: mask(**{"conv.weight": [1, 1, 1, 1], "fc.weight": [1, 1]}),
             1: mask(**{"conv.weight": [1, 1, 0, 1], "fc.weight": [1, 0]})}
    cfg = LotteryConfig(rounds=1, rate=0.34, reset="late", late_reset="10u", seed=0)
    with RunStore(tmp_path / "wt", {"lottery": cfg.to_dict(), "framework": "elf", "task": "breakout",
                                    "settings": {"seed": 0}}) as store:
        for kind, weights in (("init", init), ("late", late), ("dense_trained", trained)):
            store.save_snapshot(kind, weights)
        store.save_mask(1, masks[1])
        for k, m in masks.items():
            rec = RoundRecord(round=k, ticket="winning", fraction_pruned=1 - m.density(),
                              nominal_fraction_pruned=1 - m.density(), surviving=m.num_surviving(),
                              selected=m.num_selected(), primary="reward", higher_is_better=True,
                              metrics={"reward": 1.0})
            store.write_round(k, rec, sparsity_report(k, m))
    (group,) = collect([tmp_path / "wt"])
    (curve,) = plan_anatomy(group, "breakout").signs
    # round 0, all 6 weights: conv 1, 2, 4 keep the late sign, 3 flips; fc 1 keeps, 2 flips -> 4/6.
    # round 1 keeps conv 1, 2, 4 and fc 1: all keep it -> 1
    assert curve.values == [[pytest.approx(4 / 6)], [1.0]] and "late reset" in curve.label
    assert curve.fraction_pruned == [0.0, pytest.approx(2 / 6)]


def test_one_seed_says_why_it_has_no_overlaps(tmp_path):
    wt = demo.run_ticket(LotteryConfig(rounds=1, rate=0.2, reset="init", seed=0), tmp_path / "wt", seed=0,
                         epochs=1, n_train=512)
    build_report([wt], tmp_path / "report")
    a = json.loads((tmp_path / "report" / "report.json").read_text())["anatomy"][0]
    assert a["overlaps"] == [] and "overlap" not in a["files"]
    assert any(n.startswith("no mask overlaps: they compare two seeds") for n in a["notes"]), a["notes"]
    assert "Note: no mask overlaps" in (tmp_path / "report" / "report.md").read_text()
