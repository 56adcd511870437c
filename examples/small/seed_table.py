"""What the small claim scripts share: per round, winning and random tickets over seeds, from their run stores."""
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lth_plugins.report.collect import load_run  # noqa: E402,F401  (also for the scripts)
from lth_plugins.report.series import mean_std  # noqa: E402,F401  (for the scripts)
from lth_plugins.report.tables import anatomy_tables, text_table  # noqa: E402
from lth_plugins.store import CONFIG, RunStore  # noqa: E402


def add_seeds_flag(parser, default) -> None:
    """`--seeds 1 2 3`: the seeds every claim script repeats its runs over (one syntax for all of them)."""
    parser.add_argument("--seeds", type=int, nargs="+", default=list(default), metavar="SEED",
                        help=f"seed of each repetition (default: {' '.join(map(str, default))})")


def run_module(module: str, args, log) -> None:
    """`python -m module args`, one torch thread, output appended to `log`; SystemExit naming the log if it fails."""
    with open(log, "a") as f:
        proc = subprocess.run([sys.executable, "-m", module, *args], env=dict(os.environ, OMP_NUM_THREADS="1"),
                              stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{module} failed, see {log}")


def write_report(run_dirs, out: Path) -> None:
    """`lth report` of the script's run directories (figures, tables, index.html) into OUT/report. A process of
    its own: fairseq's logging set up in this one would make matplotlib print its debug lines."""
    run_module("lth_plugins.cli", ["report", *map(str, run_dirs), "-o", str(out / "report")], out / "report.log")
    print_overlaps(json.loads((out / "report" / "report.json").read_text()))
    print(f"figures: {out / 'report' / 'index.html'}", flush=True)


def print_overlaps(report: dict) -> None:
    """The anatomy's mask overlaps of a report.json (between seeds, schedules, transferred and own tickets), each
    level beside its chance line: the table under the report's overlap figure."""
    for a in report["anatomy"]:
        table = anatomy_tables(a).get("overlap")
        if table:
            print(f"mask overlap, {a['task']}:\n{text_table(*table)}")


def has_finished_round(path) -> bool:
    """Whether the run directory `path` exists and has finished a round (one that has not is no run to report)."""
    return (Path(path) / CONFIG).is_file() and bool(RunStore(path).finished_rounds())


def ticket_rows(pairs, unfinished: bool = False):
    """[(round, fraction pruned, WT values, RT values)] over seeds; `pairs` holds one (WT dir, RT dir) per seed.
    Values are each run's primary metric (the ticket reward of an RL run); a random ticket has no round 0.
    `unfinished`: a run with no round finished yet (or not started) adds no values instead of being refused."""
    def load(path):
        return load_run(path) if not unfinished or has_finished_round(path) else None

    runs = [(load(wt), load(rt)) for wt, rt in pairs]
    records = {k: r for w, _ in runs if w is not None for k, r in w.records.items()}
    rows = []
    for k in sorted(records):
        wt = [w.value(k) for w, _ in runs if w is not None and k in w.records]
        rt = [r.value(k) for _, r in runs if r is not None and k in r.records]
        rows.append((k, records[k].fraction_pruned, wt, rt))
    return rows


def print_table(rows, title: str, digits: int = 1, labels=("WT", "RT")) -> None:
    """Rows (round, fraction pruned, values per column...) as mean ± std per round, e.g. `ticket_rows`' rows;
    `labels`: the columns' names."""
    print(title)
    print(f"{'round':>5} {'pruned':>7} | " + " | ".join(f"{label:>15}" for label in labels))
    for k, pruned, *columns in rows:
        cells = [f"{mean_std(v)[0]:7.{digits}f} ± {mean_std(v)[1]:5.{digits}f}" if v else f"{'-':>15}"
                 for v in columns]
        print(f"{k:>5} {100 * pruned:6.1f}% | " + " | ".join(cells))
