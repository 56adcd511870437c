"""`lth report` on run stores written by the core: real demo runs and multi-seed stores written through RunStore."""
import csv
import io
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from lth_plugins import cli, demo
from lth_plugins.hparams import LotteryConfig
from lth_plugins.progress import RoundProgress
from lth_plugins.record import RoundRecord
from lth_plugins.report import ReportError, build_report
from lth_plugins.report import plots, tables
from lth_plugins.report.collect import settings_label
from lth_plugins.report.output import MANIFEST
from lth_plugins.store import RunStore

PNG = b"\x89PNG\r\n\x1a\n"
PARAMS = {"embed.weight": 600, "layer.weight": 300, "out.weight": 100}


# --- run stores -------------------------------------------------------------------------------------------------
def metric_value(ticket, seed, k, base=5.0):
    """A log-perplexity-like curve: winning tickets flat, random tickets rising with sparsity."""
    rise = 0.02 * k if ticket == "winning" else 0.15 * k
    return base + rise + 0.05 * seed


def write_run(path, task="wmt-en-de", ticket="winning", seed=0, rounds=20, rate=0.2, schedule="iterative",
              reset="late", exclude=(), primary="log_perplexity", higher_is_better=False, framework="fairseq",
              masks_from=None, value=metric_value, upto=None, settings=None):
    """A finished (or, with `upto`, partial) run written through the store's API, as LotteryRun writes it;
    `settings`: the framework's settings besides its seed."""
    cfg = LotteryConfig(rounds=rounds, rate=rate, schedule=schedule, reset=reset, ticket=ticket,
                        masks_from=str(masks_from) if masks_from else None, exclude=tuple(exclude), seed=seed)
    full = {"lottery": cfg.to_dict(), "framework": framework, "task": task,
            "settings": {**(settings or {}), "seed": seed}}
    with RunStore(path, full) as store:
        first = 1 if ticket == "random" else 0
        for k in range(first, (rounds if upto is None else upto) + 1):
            keep = (1 - rate) ** k
            # layers pruned unevenly, the whole at the paper's 1 - (1-p)^k
            density = {"embed.weight": keep ** 1.2, "out.weight": keep ** 0.8}
            density["layer.weight"] = (keep * sum(PARAMS.values()) - sum(density[n] * PARAMS[n] for n in density)
                                       ) / PARAMS["layer.weight"]
            pruned = 1 - keep
            v = value(ticket, seed, k)
            selected = sum(PARAMS.values())
            rec = RoundRecord(round=k, ticket=ticket, fraction_pruned=pruned, nominal_fraction_pruned=1 - keep,
                              surviving=round(keep * selected), selected=selected, primary=primary,
                              higher_is_better=higher_is_better, metrics={primary: v, "other": 1.0})
            store.write_round(k, rec, {"round": k, "density": density, "numel": dict(PARAMS)})
    return Path(path)


def write_experiment(root, seeds=(0, 1, 2), **kw):
    dirs = []
    for s in seeds:
        wt = write_run(root / f"wt_s{s}", seed=s, **kw)
        dirs += [wt, write_run(root / f"rt_s{s}", ticket="random", seed=s, masks_from=wt, **kw)]
    return dirs


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """Real runs: the core's demo MLP, winning and random tickets, 2 rounds of 1 epoch."""
    root = tmp_path_factory.mktemp("demo")
    # one epoch per round leaves no room for a late-reset point: reset to init
    wt = demo.run_ticket(LotteryConfig(rounds=2, rate=0.2, reset="init", seed=0), root / "wt", seed=0, epochs=1)
    rt = demo.run_ticket(LotteryConfig(rounds=2, rate=0.2, ticket="random", masks_from=str(wt), seed=0),
                         root / "rt", seed=0, epochs=1)
    return wt, rt


def read_json(p):
    return json.loads(Path(p).read_text())


def figure(data, kind, task=None):
    for t in data["tasks"]:
        if task is None or t["task"] == task:
            for f in t["figures"]:
                if f["kind"] == kind:
                    return f
    return None


# --- reports of real runs ---------------------------------------------------------------------------------------
def test_report_of_real_demo_runs(demo_runs, tmp_path):
    wt, rt = demo_runs
    out = tmp_path / "report"
    rep = build_report([wt, rt], out)
    for f in rep.files:
        assert (out / f).is_file(), f
    pngs = [f for f in rep.files if f.endswith(".png")]
    assert {Path(f).name for f in pngs} == {"teacher-mlp_tickets.png", "teacher-mlp_layers_round02.png",
                                            "teacher-mlp_anatomy_layers.png", "teacher-mlp_anatomy_signs.png"}
    for f in pngs:
        assert (out / f).read_bytes()[:8] == PNG

    # the plotted series, read back from the drawn figure, are the runs' own metrics
    drawn = rep.drawn["figures/teacher-mlp_tickets.png"]["panels"][0]
    wt_m = {k: json.loads((wt / f"round_{k:02d}" / "metrics.json").read_text()) for k in range(3)}
    rt_m = {k: json.loads((rt / f"round_{k:02d}" / "metrics.json").read_text()) for k in (1, 2)}
    win, rand = drawn["series"]
    assert (win["ticket"], win["color"], win["rounds"]) == ("winning", "tab:blue", [0, 1, 2])
    assert (rand["ticket"], rand["color"], rand["rounds"]) == ("random", "tab:red", [1, 2])
    assert win["y_mean"] == pytest.approx([wt_m[k]["metrics"]["test_accuracy"] for k in range(3)])
    assert rand["y_mean"] == pytest.approx([rt_m[k]["metrics"]["test_accuracy"] for k in (1, 2)])
    assert win["x_percent_pruned"] == pytest.approx([100 * wt_m[k]["fraction_pruned"] for k in range(3)])
    assert drawn["unpruned"]["y_mean"] == pytest.approx(wt_m[0]["metrics"]["test_accuracy"])
    assert drawn["unpruned"]["color"] == "tab:gray"
    assert rep.drawn["figures/teacher-mlp_tickets.png"]["ylabel"] == "test accuracy (higher is better)"

    # per-layer chart = the mask densities of the run's sparsity.json
    sp = json.loads((wt / "round_02" / "sparsity.json").read_text())
    layers = rep.drawn["figures/teacher-mlp_layers_round02.png"]
    assert layers["parameters"] == list(sp["density"])
    assert layers["percent_pruned"] == pytest.approx([100 * (1 - d) for d in sp["density"].values()])
    rows = list(csv.DictReader(io.StringIO((out / "layer_sparsity.csv").read_text())))
    assert [r["parameter"] for r in rows] == list(sp["density"])

    # the CSV holds the same numbers
    rows = list(csv.DictReader(io.StringIO((out / "report.csv").read_text())))
    got = {(r["ticket"], int(r["round"])): float(r["mean"]) for r in rows}
    assert got[("unpruned", 0)] == pytest.approx(wt_m[0]["metrics"]["test_accuracy"])
    assert got[("random", 2)] == pytest.approx(rt_m[2]["metrics"]["test_accuracy"])
    assert ("random", 0) not in got

    # index.html references every figure and table, by relative path
    html = (out / "index.html").read_text()
    refs = set(re.findall(r"(?:src|href)='([^'#]+)'", html))
    assert {f for f in rep.files if f != "index.html"} <= refs
    assert not any(r.startswith(("/", "http")) for r in refs)
    assert "teacher-mlp" in rep.summary and "winning ticket" in rep.summary


# --- multi-seed stores: 20 rounds, lower-is-better, ablations ----------------------------------------------------
def test_twenty_rounds_mean_std_and_axis(tmp_path):
    dirs = write_experiment(tmp_path / "runs")
    rep = build_report(dirs, tmp_path / "out")
    data = read_json(tmp_path / "out" / "report.json")
    fig = figure(data, "tickets")
    win, rand = fig["panels"][0]["series"]
    assert win["rounds"] == list(range(21)) and rand["rounds"] == list(range(1, 21))
    for s, ticket in ((win, "winning"), (rand, "random")):
        for i, k in enumerate(s["rounds"]):
            vals = [metric_value(ticket, seed, k) for seed in (0, 1, 2)]
            assert s["mean"][i] == pytest.approx(np.mean(vals))
            assert s["std"][i] == pytest.approx(np.std(vals, ddof=1))
            assert s["n"][i] == 3
    assert fig["unpruned"]["mean"] == [pytest.approx(np.mean([metric_value("winning", s, 0) for s in (0, 1, 2)]))]
    drawn = rep.drawn[fig["file"]]
    assert drawn["ylabel"] == "log perplexity (lower is better)"
    x = drawn["panels"][0]["series"][0]["x_percent_pruned"]
    assert x[0] == pytest.approx(0.0) and x[-1] == pytest.approx(98.847, abs=1e-3)
    assert figure(data, "ablation") is None and figure(data, "selection") is None
    assert "round 20" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("mean,std,text", [(4.2034, 0.03767, "4.203 ± 0.038"), (4.21105, 0.0005104, "4.21105 ± 0.00051"),
                                           (168.12, 16.8, "168 ± 17"), (7.75, 6.0104, "7.8 ± 6.0"),
                                           (1.5, 0.0, "1.5 ± 0")])
def test_mean_and_spread_share_decimals(mean, std, text):
    assert tables.mean_spread(mean, std, n=3) == text
    assert tables.mean_spread(mean, std, n=1) == f"{mean:.4g}"  # one seed: no spread


def test_axis_ends_at_the_last_round_despite_rounding():
    assert plots.rounds_on_axis([0.0, 0.7, 0.91, 0.973], 0.7) == 3
    assert plots.rounds_on_axis([0.9730021469], 0.7) == 3  # fig6's embeddings-excluded round 3: a hair past 0.973
    assert plots.rounds_on_axis([0.975], 0.7) == 4 and plots.rounds_on_axis([], 0.2) == 1


def test_pruning_axis_spreads_high_sparsity_rounds():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    plots.pruning_axis(ax, 0.2, 20)
    ticks = ax.get_xticks()
    assert ticks[0] == pytest.approx(0.0) and ticks[-1] == pytest.approx(98.847, abs=1e-2)
    labels = [ax.xaxis.get_major_formatter()(t) for t in ticks]
    assert labels[:3] == ["0.0", "20.0", "36.0"] and labels[-1] == "98.8"
    pos = ax.transData.transform(np.column_stack([ticks, np.ones_like(ticks)]))[:, 0]
    steps = np.diff(pos)
    assert steps == pytest.approx(np.full_like(steps, steps[0]), rel=1e-6)  # one equal step per round


def test_ablation_and_embeddings_excluded_figures(tmp_path):
    root = tmp_path / "runs"
    dirs = write_experiment(root / "main", seeds=(0, 1), rounds=5, task="lstm-wt2")
    dirs += [write_run(root / f"os_s{s}", task="lstm-wt2", rounds=5, schedule="oneshot", reset="init", seed=s)
             for s in (0, 1)]
    dirs += [write_run(root / f"init_s{s}", task="lstm-wt2", rounds=5, reset="init", seed=s) for s in (0, 1)]
    dirs += write_experiment(root / "noemb", seeds=(0, 1), rounds=5, task="lstm-wt2", exclude=("embed.*",))
    rep = build_report(dirs, tmp_path / "out")
    data = read_json(tmp_path / "out" / "report.json")

    main = figure(data, "tickets")["panels"][0]["series"]
    assert [(s["ticket"], s["variant"]["schedule"], s["variant"]["reset"], s["variant"]["exclude"])
            for s in main] == [("winning", "iterative", "late", []), ("random", "iterative", "late", [])]

    abl = figure(data, "ablation")["panels"][0]["series"]
    got = [(s["ticket"], s["variant"]["schedule"], s["variant"]["reset"]) for s in abl]
    assert got == [("winning", "iterative", "late"), ("winning", "iterative", "init"),
                   ("winning", "oneshot", "init"), ("random", "iterative", "late")]
    assert abl[0]["color"] == "tab:blue" and abl[-1]["color"] == "tab:red"
    assert all(s["variant"]["exclude"] == [] for s in abl)

    sel = figure(data, "selection")
    assert [p["title"] for p in sel["panels"]] == ["all weights pruned", "excluding embed.*"]
    right = sel["panels"][1]["series"]
    # the random tickets of the excluded variant inherit it from the winning run their masks come from
    assert [(s["ticket"], s["variant"]["exclude"], s["color"]) for s in right] == [
        ("winning", ["embed.*"], "tab:blue"), ("random", ["embed.*"], "tab:red")]
    html = (tmp_path / "out" / "index.html").read_text()
    for f in rep.files:
        if f.endswith(".png"):
            assert f"src='{f}'" in html
            assert (tmp_path / "out" / f).read_bytes()[:8] == PNG


def test_tasks_get_separate_figures_and_higher_is_better_labels(tmp_path):
    dirs = write_experiment(tmp_path / "a", seeds=(0,), rounds=3, task="CartPole-v0", framework="flare",
                            primary="reward", higher_is_better=True)
    dirs += write_experiment(tmp_path / "b", seeds=(0,), rounds=3, task="wmt/en de", primary="bleu",
                             higher_is_better=True)
    rep = build_report(dirs, tmp_path / "out")
    assert rep.drawn["figures/CartPole-v0_tickets.png"]["ylabel"] == "reward (higher is better)"
    assert rep.drawn["figures/wmt-en-de_tickets.png"]["ylabel"] == "BLEU (higher is better)"
    for f, d in rep.drawn.items():
        if d["kind"] == "tickets":
            assert len({s["label"] for s in d["panels"][0]["series"]}) == 2


def test_layer_round_choice_and_partial_runs(tmp_path):
    dirs = write_experiment(tmp_path / "runs", seeds=(0, 1), rounds=6)
    dirs.append(write_run(tmp_path / "runs" / "wt_s2", seed=2, rounds=6, upto=3))  # still running
    rep = build_report(dirs, tmp_path / "out", layer_round=4)
    chart = rep.layer_charts[0]
    assert chart.round == 4 and chart.n == 2
    assert chart.pruned_mean[0] == pytest.approx(1 - 0.8 ** (4 * 1.2))
    win = read_json(tmp_path / "out" / "report.json")["tasks"][0]["figures"][0]["panels"][0]["series"][0]
    assert win["n"] == [3, 3, 3, 3, 2, 2, 2]
    rep = build_report(dirs, tmp_path / "out2")
    assert rep.layer_charts[0].round == 3  # the last round every run finished
    rep = build_report(dirs, tmp_path / "out3", layer_round=50)
    assert rep.layer_charts[0].round == 6 and rep.notes


# --- bad input: clear messages, nothing left behind --------------------------------------------------------------
def _nothing_left(parent: Path, out: Path):
    assert not out.exists()
    assert not [p for p in parent.iterdir() if ".report-" in p.name]


def test_not_a_run_store(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(ReportError, match="not a lottery run directory"):
        build_report([tmp_path / "junk"], tmp_path / "out")
    with pytest.raises(ReportError, match="no such directory"):
        build_report([tmp_path / "missing"], tmp_path / "out")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(ReportError, match="unreadable"):
        build_report([tmp_path / "bad"], tmp_path / "out")
    _nothing_left(tmp_path, tmp_path / "out")


def test_empty_run(tmp_path):
    dirs = write_experiment(tmp_path / "runs", seeds=(0,), rounds=2)
    empty = write_run(tmp_path / "runs" / "empty", seed=5, rounds=2, upto=-1)
    with pytest.raises(ReportError, match="empty run"):
        build_report(dirs + [empty], tmp_path / "out")
    _nothing_left(tmp_path, tmp_path / "out")


def test_mixed_tasks_are_refused(tmp_path):
    lm = write_run(tmp_path / "lm_wt", task="lstm-wt2", rounds=2)
    rt = write_run(tmp_path / "mt_rt", task="wmt-en-de", ticket="random", masks_from=lm, rounds=2)
    with pytest.raises(ReportError, match="different tasks are mixed"):
        build_report([lm, rt], tmp_path / "out")
    other = write_run(tmp_path / "lm_wt_bleu", task="lstm-wt2", rounds=2, seed=1, primary="bleu",
                      higher_is_better=True)
    with pytest.raises(ReportError, match="differ in primary metric"):
        build_report([lm, other], tmp_path / "out")
    dup = write_run(tmp_path / "lm_wt_copy", task="lstm-wt2", rounds=2)
    with pytest.raises(ReportError, match="same experiment"):
        build_report([lm, dup], tmp_path / "out")
    _nothing_left(tmp_path, tmp_path / "out")


def test_runs_of_other_settings_are_not_pooled_as_seeds(tmp_path):
    base = {"lr": [0.007], "encoder_layers": 2, "data": {"dict.src.txt": "sha256:aa"}}
    experiments = {"base": base, "lr": {**base, "lr": [0.01]}, "depth": {**base, "encoder_layers": 6},
                   "data": {**base, "data": {"dict.src.txt": "sha256:bb"}}}
    dirs = []
    for name, settings in experiments.items():
        dirs += write_experiment(tmp_path / name, seeds=(0, 1), rounds=2, settings=settings)
    rep = build_report(dirs, tmp_path / "out")
    groups = {g.task: g for g, _ in rep.tasks}
    # the data fingerprint (nested settings) is named by a short digest of its values, in full in a footnote
    digest = {v: settings_label({"settings.data.dict.src.txt": v}) for v in ("sha256:aa", "sha256:bb")}
    assert re.fullmatch(r"data #[0-9a-f]{6}", digest["sha256:aa"]) and digest["sha256:aa"] != digest["sha256:bb"]
    aa, bb = digest["sha256:aa"], digest["sha256:bb"]
    assert sorted(groups) == sorted([f"wmt-en-de ({aa}, encoder_layers=2, lr=0.007)",
                                     f"wmt-en-de ({aa}, encoder_layers=2, lr=0.01)",
                                     f"wmt-en-de ({aa}, encoder_layers=6, lr=0.007)",
                                     f"wmt-en-de ({bb}, encoder_layers=2, lr=0.007)"])
    assert ("Told apart from the task's other experiments by: data.dict.src.txt=sha256:bb; encoder_layers=2; "
            "lr=[0.007]." in (tmp_path / "out" / "report.md").read_text())
    for group, specs in rep.tasks:  # each curve averages its own experiment's two seeds, nothing else
        assert len({r.path.parent for r in group.runs}) == 1 and group.seeds == 2
        assert [s.n for s in specs[0].series()] == [[2, 2, 2], [2, 2]]
    assert len({f for f in rep.files if f.endswith("_tickets.png")}) == 4
    data = read_json(tmp_path / "out" / "report.json")
    assert {t["task"]: t["settings"]["settings.lr"] for t in data["tasks"]}[
        f"wmt-en-de ({aa}, encoder_layers=2, lr=0.01)"] == [0.01]

    # seeds alone (the framework's and the lottery's) differ: one curve of two seeds
    rep = build_report(write_experiment(tmp_path / "seeds", seeds=(3, 4), rounds=2, settings=base),
                       tmp_path / "out2")
    assert [g.task for g, _ in rep.tasks] == ["wmt-en-de"] and rep.tasks[0][0].seeds == 2


def test_failure_while_drawing_leaves_nothing(tmp_path, monkeypatch):
    dirs = write_experiment(tmp_path / "runs", seeds=(0,), rounds=2)

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "draw_layer_chart", boom)
    with pytest.raises(RuntimeError):
        build_report(dirs, tmp_path / "out")
    _nothing_left(tmp_path, tmp_path / "out")


# --- an existing output folder ------------------------------------------------------------------------------------
def test_existing_out_keeps_other_files_and_replaces_its_own(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    a = write_experiment(tmp_path / "a", seeds=(0,), rounds=2, task="taskA")
    b = write_experiment(tmp_path / "b", seeds=(0,), rounds=2, task="taskB")
    build_report(a + b, out)
    assert (out / "figures" / "taskB_tickets.png").is_file() and (out / MANIFEST).is_file()
    before = (out / "report.csv").read_text()
    rep = build_report(a, out)  # a new report replaces the old one's files, drops its stale figures
    assert not (out / "figures" / "taskB_tickets.png").exists()
    assert (out / "figures" / "taskA_tickets.png").is_file()
    assert (out / "notes.txt").read_text() == "mine"
    assert "taskB" in before and "taskB" not in (out / "report.csv").read_text()
    assert sorted(read_json(out / MANIFEST)["files"]) == sorted(rep.files)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "index.html").write_text("someone else's page")
    with pytest.raises(ReportError, match="not written by lth report"):
        build_report(a, foreign)
    assert (foreign / "index.html").read_text() == "someone else's page"
    assert sorted(p.name for p in foreign.iterdir()) == ["index.html"]


def test_a_report_into_a_run_sweep_or_data_folder_is_refused_before_writing(tmp_path):
    runs = write_experiment(tmp_path / "a", seeds=(0,), rounds=2)
    data = tmp_path / "data-bin"
    data.mkdir()
    (data / "dict.en.txt").write_text("hello 1\n")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text("{}")
    for out, why in ((runs[0], "is a run directory (it holds config.json)"),
                     (data, "is a data folder (it holds dict.en.txt)"),
                     (sweep, "is a sweep directory (it holds sweep.json)")):
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
        with pytest.raises(ReportError, match=re.escape(f"{out} {why}: the report's files would go among its own")):
            build_report(runs, out)
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing written there
    assert not list(tmp_path.glob("**/.*.report-*"))


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_report_folder_follows_the_umask(tmp_path, umask):
    dirs = write_experiment(tmp_path / "runs", seeds=(0,), rounds=2)
    old = os.umask(umask)
    try:
        build_report(dirs, tmp_path / "out")
    finally:
        os.umask(old)
    for path in (tmp_path / "out", tmp_path / "out" / "figures"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~umask, path
    assert stat.S_IMODE((tmp_path / "out" / "index.html").stat().st_mode) == 0o666 & ~umask


def test_parent_folder_of_runs_is_expanded(tmp_path):
    write_experiment(tmp_path / "runs", seeds=(0, 1), rounds=2)
    rep = build_report([tmp_path / "runs"], tmp_path / "out")
    assert len(rep.tasks[0][0].runs) == 4


# --- the command --------------------------------------------------------------------------------------------------
def test_cli_report(tmp_path, capsys):
    dirs = write_experiment(tmp_path / "runs", seeds=(0, 1), rounds=3)
    assert cli.main(["report", *map(str, dirs), "-o", str(tmp_path / "out"), "--layer-round", "2"]) == 0
    text = capsys.readouterr().out
    assert "wmt-en-de" in text and "98.8" not in text and "48.8" in text and "index.html" in text
    assert (tmp_path / "out" / "figures" / "wmt-en-de_layers_round02.png").is_file()
    assert cli.main(["report", str(tmp_path / "nope"), "-o", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "lth: error:" in err and "no such directory" in err
    assert not (tmp_path / "out2").exists()


# --- progress lines -------------------------------------------------------------------------------------------------
def test_round_progress_lines():
    buf = io.StringIO()
    p = RoundProgress(0, 20, label="lottery t winning", stream=buf)
    p.start(0, 0.0)
    p.finish(0, 0.0, "bleu", 27.6)
    p.start(1, 0.2)
    p.finish(1, 0.2, "bleu", 27.1)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4  # two lines per round, terminal or not
    assert "round 1/20 start: 20.0% pruned, last bleu=27.6" in lines[2] and "ETA" in lines[2]
    assert re.search(r"round 1/20 finished in \d+:\d\d: 20\.0% pruned, bleu=27\.1 \| elapsed .*, ETA", lines[3])
    assert not any("\r" in line for line in lines)


def test_rounds_over_fewer_games_than_asked_are_hollow_and_explained(tmp_path):
    """An RL round whose ticket reward averages fewer than L games (or none finished) is drawn hollow, or left
    out, and the tables say why."""
    from lth_plugins.rl import ticket_reward

    def value(ticket, seed, k):
        return 10.0 + k if ticket == "winning" else 5.0

    dirs = write_experiment(tmp_path / "runs", seeds=(0, 1), rounds=3, primary="ticket_reward",
                            higher_is_better=True, framework="elf", task="breakout", value=value)
    wt0 = RunStore(dirs[0])
    rec = wt0.read_round(2)
    rec.metrics.update(ticket_reward([3.0, 4.0], last_games=8).metrics())  # 2 of 8 games finished
    wt0.metrics_path(2).write_text(json.dumps(rec.to_json()))
    rec = wt0.read_round(3)
    rec.metrics.update(ticket_reward([], last_games=8).metrics())  # none finished: no value
    wt0.metrics_path(3).write_text(json.dumps(rec.to_json()))
    report = build_report(dirs, tmp_path / "out")
    wt = next(s for s in report.drawn["figures/breakout_tickets.png"]["panels"][0]["series"]
              if s["ticket"] == "winning")
    assert wt["rounds"] == [0, 1, 2, 3] and wt["hollow"] == [False, False, True, True]
    assert wt["n"] == [2, 2, 2, 1]  # round 3: only the seed with a value
    md = (tmp_path / "out" / "report.md").read_text()
    assert "only 2 of the last 8 games finished (wt_s0)" in md and "no game finished in this round (wt_s0)" in md
    assert "| 7.8 ± 6.0 * |" in md.split("| 2 |")[1].split("\n")[0]  # (3.5 + 12) / 2, marked
    assert "only 2 of the last 8 games finished" in report.summary
