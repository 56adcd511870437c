"""The fairseq adapter's `lth` subcommands (entry points of ``lth_plugins.commands``)."""
import importlib.util
import sys
from pathlib import Path

from lth_plugins.commands import Command, DefaultsShown


class FairseqUserDirCommand(Command):
    help = "print the path to give fairseq-train as `--user-dir`"

    def run(self, args):
        from . import USER_DIR

        print(USER_DIR)
        return 0


class DemoCommand(Command):
    help = ("the main job: fairseq winning vs random tickets of a small Transformer on a generated translation "
            "corpus, with a per-round table and the report")

    def add_arguments(self, parser):
        from .demo import add_arguments

        add_arguments(parser)

    def run(self, args):
        try:
            from .demo import run_demo
        except ImportError as e:
            print(f"lth demo needs fairseq ({e}); run scripts/setup.sh or pip install 'lth-plugins[fairseq]'",
                  file=sys.stderr)
            return 2
        from lth_plugins.report import build_report

        out = Path(args.out)
        run_demo(out, rounds=args.rounds, rate=args.rate, max_update=args.max_update, seed=args.seed,
                 generate_args=args.generate_args)
        report = build_report([out / "wt", out / "rt"], out / "report")
        print(f"\nfigures and tables: {report.out / 'index.html'}")
        return 0


class DataCommand(Command):
    help = "build fairseq translation data from real text (catalogs: the installed gettext catalogs, English->X)"

    def add_arguments(self, parser):
        from . import catalogs

        sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
        add = sources.add_parser("catalogs", help=catalogs.__doc__.split("\n\n")[0],
                                 description=catalogs.__doc__.split("\n\n")[0], formatter_class=DefaultsShown)
        catalogs.add_arguments(add)

    def run(self, args):
        from . import catalogs

        missing = [m for m in ("fairseq", "polib", "sentencepiece", "sacrebleu") if importlib.util.find_spec(m) is None]
        if missing:
            print(f"lth data needs {', '.join(missing)}; run scripts/setup.sh or pip install 'lth-plugins[fairseq]'",
                  file=sys.stderr)
            return 2
        from .demo import train_command_line

        catalogs.run(args)
        first = catalogs.parse_langs(args.langs)[0]
        print(f"train and score {catalogs.SOURCE_LANG}-{first} with:\n{train_command_line(args.out, first)}")
        return 0
