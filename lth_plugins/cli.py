"""The `lth` command. Its subcommands are the entry points of ``lth_plugins.commands`` (see `commands`): the
core registers status, plugins, report and demo-core; each framework adapter registers its own."""
import argparse
import os
import sys

from .commands import load_commands
from .errors import run_command


class DefaultsShown(argparse.HelpFormatter):
    """Help that shows each option's default, unless it is empty, off, or the help already speaks of it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        off = default is None or default is False or default == "" or default == argparse.SUPPRESS
        if off or "default" in text or not action.option_strings:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})".lstrip()


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
