"""How `lth report` and `lth status` name tasks, experiments and runs: a translation task by its language pair,
transferred tickets one curve per source task (never two runs of one seed averaged as two seeds), short titles and
file names, negative layer rounds, and status columns named by their runs. The runs are tiny real torch runs whose
task and settings are those the fairseq adapter records for `--task translation -s en -t de`."""
import csv
import io
import json
from pathlib import Path

import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lth_plugins import cli
from lth_plugins.demo import BATCH, LR, make_data, make_model, train_round
from lth_plugins.hparams import LotteryConfig
from lth_plugins.report import ReportError, build_report
from lth_plugins.report.collect import task_identity
from lth_plugins.report.plots import set_title
from lth_plugins.report.series import STEM_LENGTH
from lth_plugins.run import LotteryRun
from lth_plugins.status import status_table
from lth_plugins.store import RunStore

EPOCHS, N_TRAIN = 2, 256


def translation_settings(target: str, seed: int, build: int = 0) -> dict:
    """fairseq's settings of an en-TARGET run as the adapter stores them: its flags, the data by fingerprint (the
    sizes of another `build` of the data differ)."""
    return {"seed": seed, "source_lang": "en", "target_lang": target, "lr": [0.0005],
            "data": {"dict.en.txt": "sha256:0131211bb8" + "0" * 54, f"dict.{target}.txt": f"sha256:{target * 32}",
                     f"test.en-{target}.{target}.bin": (54058 if target == "de" else 61210) + build,
                     f"train.en-{target}.en.bin": 812345 + build, f"train.en-{target}.{target}.bin": 845001 + build}}


def translation_run(run_dir, target: str, seed: int = 1, build: int = 0, **lottery) -> Path:
    """A finished 2-round run of the demo MLP recorded as a fairseq translation run en-TARGET."""
    config = LotteryConfig(**{"rounds": 2, "rate": 0.5, "late_reset": "1ep", "seed": seed, **lottery})
    data, model = make_data(seed, n_train=N_TRAIN, n_test=N_TRAIN // 2), make_model(seed)
    with LotteryRun(config, run_dir, task="translation", framework="fairseq", label=f"translation en-{target}",
                    settings=translation_settings(target, seed, build), total_epochs=EPOCHS,
                    total_updates=EPOCHS * (N_TRAIN // BATCH), model=model) as run:
        for k in run.pending_rounds():
            with run.round(k, model, optimizer=lambda: torch.optim.Adam(model.parameters(), lr=LR)) as r:
                out = train_round(r, model, data, EPOCHS, batch=BATCH, lr=LR, seed=seed)
                r.finish({"bleu": 100 * out["test_accuracy"]}, primary="bleu", higher_is_better=True)
    return Path(run_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The four runs of the user's report: en-de and en-fr winning tickets, en-fr tickets transferred from each;
    all of seed 1."""
    root = tmp_path_factory.mktemp("runs")
    de_wt, fr_wt = translation_run(root / "de_wt", "de"), translation_run(root / "fr_wt", "fr")
    fr_tr = translation_run(root / "fr_tr", "fr", transfer_from=str(de_wt))
    fr_tr_from_fr = translation_run(root / "fr_tr_from_fr", "fr", transfer_from=str(fr_wt))
    return {"de_wt": de_wt, "fr_wt": fr_wt, "fr_tr": fr_tr, "fr_tr_from_fr": fr_tr_from_fr}


def test_a_translation_task_is_named_by_its_language_pair():
    assert task_identity({"task": "translation", "label": "translation en-de", "settings": {}}) == "translation en-de"
    # runs recorded without a label: the pair their settings give
    assert task_identity({"task": "translation", "settings": translation_settings("de", 1)}) == "translation en-de"
    assert task_identity({"task": "translation", "settings": {"target_lang": "fr"}}) == "translation ?-fr"
    assert task_identity({"task": "CartPole-v0", "settings": {"seed": 1}}) == "CartPole-v0"


def test_transferred_tickets_of_other_sources_are_curves_of_their_own(runs, tmp_path):
    report = build_report(list(runs.values()), tmp_path / "rep")
    assert [g.task for g, _ in report.tasks] == ["translation en-de", "translation en-fr"]
    fr, specs = report.tasks[1]
    assert fr.settings == {}  # one experiment per pair: no data fingerprint in the name
    # each title names the tickets its figure draws
    assert [s[0].title.split(" [")[0] for _, s in report.tasks] == [
        "translation en-de: winning tickets", "translation en-fr: winning vs transferred tickets"]
    transferred = [s for s in specs[0].series() if s.ticket == "transferred"]
    assert [(s.label, s.n) for s in transferred] == [
        ("transferred ticket from translation en-de, 1 seed", [1, 1]),
        ("transferred ticket from translation en-fr, 1 seed", [1, 1])]
    assert [s.runs for s in transferred] == [[str(runs["fr_tr"])], [str(runs["fr_tr_from_fr"])]]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "rep" / "report.csv").read_text())))
    sources = {(r["source"], r["seeds"]) for r in rows if r["ticket"] == "transferred"}
    assert sources == {("translation en-de", "1"), ("translation en-fr", "1")}
    overlaps = json.loads((tmp_path / "rep" / "report.json").read_text())["anatomy"][1]["overlaps"]
    assert sorted(c["label"] for c in overlaps if c["kind"] == "transfer") == [
        "transferred ticket from translation en-de vs this task's own winning ticket",
        "transferred ticket from translation en-fr vs this task's own winning ticket"]
    for f in report.files:  # short, file-system-safe names
        assert len(Path(f).name) <= 60 and all(c.isalnum() or c in "._-" for c in Path(f).name), f


def test_a_transferred_ticket_keeping_parameters_dense_is_a_curve_of_its_own_that_says_so(runs, tmp_path):
    """Its fraction pruned counts none of the kept parameters, so it is never averaged with a ticket of the same
    source that prunes them."""
    keep = translation_run(tmp_path / "fr_tr_keep", "fr", transfer_from=str(runs["de_wt"]),
                           transfer_keep_dense=("4.*",))
    report = build_report([runs["de_wt"], runs["fr_wt"], runs["fr_tr"], keep], tmp_path / "rep")
    fr, specs = report.tasks[1]
    transferred = [s for s in specs[0].series() if s.ticket == "transferred"]
    assert [(s.label, s.runs) for s in transferred] == [
        ("transferred ticket from translation en-de, 1 seed", [str(runs["fr_tr"])]),
        ("transferred ticket from translation en-de (4.* kept dense), 1 seed", [str(keep)])]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "rep" / "report.csv").read_text())))
    assert {r["source"] for r in rows if r["ticket"] == "transferred"} == {
        "translation en-de", "translation en-de (4.* kept dense)"}


def test_transferred_tickets_of_one_seed_from_two_sources_of_a_task_are_refused(runs, tmp_path):
    other_de = translation_run(tmp_path / "de_wt_s2", "de", seed=2)
    again = translation_run(tmp_path / "fr_tr_s2src", "fr", transfer_from=str(other_de))
    with pytest.raises(ReportError, match=r"fr_tr and .*fr_tr_s2src are transferred tickets from translation en-de "
                                          r"with the same lottery seed 1"):
        build_report([runs["de_wt"], other_de, runs["fr_wt"], runs["fr_tr"], again], tmp_path / "rep")
    assert not (tmp_path / "rep").exists()


def test_transferred_tickets_from_two_experiments_of_one_source_task_are_told_apart(runs, tmp_path):
    """Sources of the same pair on two builds of its data are two experiments: one curve each, named by what
    tells them apart (never averaged, never refused as repetitions of one seed)."""
    rebuilt = translation_run(tmp_path / "de_wt_rebuilt", "de", build=8)
    from_rebuilt = translation_run(tmp_path / "fr_tr_rebuilt", "fr", transfer_from=str(rebuilt))
    report = build_report([runs["de_wt"], rebuilt, runs["fr_wt"], runs["fr_tr"], from_rebuilt], tmp_path / "rep")
    de_titles = sorted(g.task for g, _ in report.tasks if g.task.startswith("translation en-de"))
    fr, specs = next((g, s) for g, s in report.tasks if g.task == "translation en-fr")
    transferred = [s for s in specs[0].series() if s.ticket == "transferred"]
    assert sorted(s.runs[0] for s in transferred) == sorted([str(runs["fr_tr"]), str(from_rebuilt)])
    by_run = {s.runs[0]: s.label for s in transferred}
    # each curve is named as its source's own curves are named
    assert sorted(by_run.values()) == sorted(f"transferred ticket from {t}, 1 seed" for t in de_titles)
    assert all(t.startswith("translation en-de (data #") for t in de_titles) and len(set(de_titles)) == 2
    assert by_run[str(runs["fr_tr"])] != by_run[str(from_rebuilt)]
    # transferred from one of the two only: still named by what tells it apart from the other
    report = build_report([runs["de_wt"], rebuilt, runs["fr_wt"], runs["fr_tr"]], tmp_path / "rep1")
    own = next(g.task for g, _ in report.tasks if any(r.path == runs["de_wt"] for r in g.runs))
    fr, specs = next((g, s) for g, s in report.tasks if g.task == "translation en-fr")
    assert [s.label for s in specs[0].series() if s.ticket == "transferred"] == [
        f"transferred ticket from {own}, 1 seed"] and own.startswith("translation en-de (data #")


def test_experiments_told_apart_by_data_get_short_titles_and_the_difference_in_a_footnote(runs, tmp_path):
    rebuilt = translation_run(tmp_path / "de_wt_rebuilt", "de", build=8)  # the same pair, another build of its data
    report = build_report([runs["de_wt"], rebuilt], tmp_path / "rep")
    titles = [g.task for g, _ in report.tasks]
    assert len(set(titles)) == 2 and all(t.startswith("translation en-de (data #") and len(t) <= 40 for t in titles)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Told apart from the task's other experiments by: data.test.en-de.de.bin=54066; " in md


def test_a_long_axes_title_is_wrapped_to_the_figure():
    fig = Figure(figsize=(7.5, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    set_title(ax, "translation en-de (lr=0.0005, encoder_layers=6, data #0a1b2c, +3 more): mask overlap " * 2, 7.5)
    lines = ax.get_title().splitlines()
    assert len(lines) > 1 and max(map(len, lines)) <= 82


def test_long_task_names_get_short_distinct_file_names():
    from lth_plugins.report.series import stems

    class G:
        def __init__(self, task):
            self.task = task
    long = "translation en-de (data.dict.de.txt=sha256:0131211bb8…, data.dict.fr.txt=unset, +24 more)"
    names = stems([G(long), G(long.replace("+24", "+25"))])
    assert len(set(names.values())) == 2 and all(len(n) <= STEM_LENGTH + 7 for n in names.values())


def test_negative_layer_round_counts_from_the_last(runs, tmp_path):
    report = build_report([runs["de_wt"]], tmp_path / "last", layer_round=-1)
    assert [c.round for c in report.layer_charts] == [2] and not report.notes
    report = build_report([runs["de_wt"]], tmp_path / "first", layer_round=-2)
    assert [c.round for c in report.layer_charts] == [1]
    with pytest.raises(ReportError, match="layer round -3 counts back past the first pruned round"):
        build_report([runs["de_wt"]], tmp_path / "none", layer_round=-3)


def test_status_names_each_column_by_its_run_and_the_transfer_source(runs):
    header = status_table([runs["de_wt"], runs["fr_wt"], runs["fr_tr"]]).splitlines()[0]
    assert "de_wt: winning bleu" in header and "fr_wt: winning bleu" in header
    assert "fr_tr: transferred bleu (from de_wt)" in header


def test_status_of_a_path_that_does_not_exist_says_so(tmp_path, capsys):
    assert cli.main(["status", str(tmp_path / "does_not_exist")]) != 0
    err = capsys.readouterr().err
    assert "does_not_exist does not exist" in err and "config.json" not in err


def test_the_unpruned_line_counts_each_seeds_dense_round_once(tmp_path):
    from .test_report import write_run

    # the default variant (iterative, late reset) has no dense round on disk; two other variants of seed 0 have one
    default = write_run(tmp_path / "it_late", seed=0, rounds=2)
    (RunStore(default).metrics_path(0)).unlink()
    others = [write_run(tmp_path / "os_late", seed=0, rounds=2, schedule="oneshot"),
              write_run(tmp_path / "it_init", seed=0, rounds=2, reset="init")]
    report = build_report([default, *others], tmp_path / "rep")
    dense = report.tasks[0][1][0].dense
    assert dense.n == [1] and dense.label.endswith("(1 seed)")
