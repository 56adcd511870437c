"""The `lth` command. Its subcommands are the entry points of ``lth_plugins.commands`` (see `commands`): the
core registers status, plugins, report and demo-core; each framework adapter registers its own."""
import argparse
import os
import sys

from .commands import DefaultsShown, load_commands
from .errors import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lth", description="Lottery-ticket experiments on your framework.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in load_commands().items():
        p = sub.add_parser(name, help=command.help, description=command.help,
                           formatter_class=DefaultsShown)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_command(lambda: args.func(args), label="lth: error")
    except BrokenPipeError:  # the reader went away (`lth status ... | head`): nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
