"""The `lth` command: status of runs, registered plugins, demos and reports."""
import argparse
import importlib.util
import sys
from pathlib import Path

from .errors import LotteryError


def cmd_status(args) -> int:
    from .status import status_table

    print(status_table(args.run_dirs))
    return 0


def cmd_plugins(args) -> int:
    from .registry import describe_all

    for ns, entries in describe_all().items():
        print(ns)
        for name, target in entries.items():
            print(f"  {name:<22} {target}")
    return 0


def cmd_demo_core(args) -> int:
    from . import demo
    from .status import status_table

    dirs = demo.main(args.out, rounds=args.rounds, seeds=args.seeds, epochs=args.epochs)
    for i in range(0, len(dirs), 2):
        print(status_table(dirs[i:i + 2]))
    return 0


def cmd_demo(args) -> int:
    """The main job: fairseq winning vs random tickets on a generated corpus, then the report."""
    try:
        from fairseq_ext.demo import run_demo
    except ImportError as e:
        print(f"lth demo needs fairseq ({e}); run scripts/setup.sh or pip install 'lth-plugins[fairseq]'",
              file=sys.stderr)
        return 2
    from .report import build_report

    out = Path(args.out)
    run_demo(out, rounds=args.rounds, rate=args.rate, max_update=args.max_update, seed=args.seed)
    report = build_report([out / "wt", out / "rt"], out / "report")
    print(f"\nfigures and tables: {report.out / 'index.html'}")
    return 0


def cmd_fairseq_user_dir(args) -> int:
    spec = importlib.util.find_spec("fairseq_ext")
    if spec is None or not spec.submodule_search_locations:
        print("fairseq_ext is not installed (pip install lth-plugins[fairseq])", file=sys.stderr)
        return 2
    print(list(spec.submodule_search_locations)[0])
    return 0


def cmd_report(args) -> int:
    from .report import build_report

    report = build_report(args.run_dirs, args.out, layer_round=args.layer_round)
    for note in report.notes:
        print(f"lth: note: {note}", file=sys.stderr)
    print(report.summary)
    print(f"\nwrote {len(report.files)} files to {report.out}; open {report.out / 'index.html'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lth", description="Lottery-ticket experiments on your framework.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("status", help="table of rounds of one or more run directories")
    p.add_argument("run_dirs", nargs="+")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("plugins", help="list registered pruners, resets and framework adapters")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("demo-core", help="winning vs random tickets of a small MLP on generated data (plain torch)")
    p.add_argument("--out", default="lth_output/demo-core")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.set_defaults(func=cmd_demo_core)

    p = sub.add_parser("report", help="figures (PNG), tables (CSV, Markdown) and index.html of lottery runs")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="run directories, or folders whose subdirectories are run directories")
    p.add_argument("-o", "--out", required=True, help="report folder (created; files of an earlier report "
                   "in it are replaced, other files are kept)")
    p.add_argument("--layer-round", type=int, default=None, metavar="K",
                   help="round of the per-parameter sparsity chart (default: the last round finished)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="the main job: fairseq winning vs random tickets of a small Transformer on a "
                                    "generated translation corpus, with a per-round table and the report")
    p.add_argument("--out", default="lth_output/demo")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--rate", type=float, default=0.4, help="fraction of survivors pruned per round (paper: 0.2; "
                                                           "0.4 reaches high sparsity in few rounds)")
    p.add_argument("--max-update", type=int, default=300, help="updates per round")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fairseq-user-dir", help="print the path to give fairseq's --user-dir")
    p.set_defaults(func=cmd_fairseq_user_dir)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LotteryError as e:
        print(f"lth: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
