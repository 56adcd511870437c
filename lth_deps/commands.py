"""``lth deps``: build and install a framework that is on no package registry (an entry point of
``lth_plugins.commands``)."""
from lth_plugins.commands import Command

from .builder import available_builders, load_builder
from .pipeline import build


class DepsCommand(Command):
    help = "build and install a framework that is on no package registry (flare-rl, elf-rl) from its sources"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="deps_command", required=True)
        b = sub.add_parser("build", help="build a wheel from an upstream checkout or tarball (cached), install it",
                           description="Build NAME's wheel from an upstream tree, cache it (by source, build code, "
                           "Python and torch) and install it into this environment.")
        b.add_argument("name", metavar="NAME", help=f"framework: {', '.join(available_builders()) or '(none)'}")
        b.add_argument("--source", required=True, metavar="DIR_OR_TARBALL",
                       help="a checkout of the upstream repository, or a tarball of it (e.g. git archive)")
        b.add_argument("--no-install", action="store_true", help="build (or find) the wheel, do not install it")
        b.add_argument("--rebuild", action="store_true", help="ignore a cached wheel")

    def run(self, args):
        result = build(load_builder(args.name), args.source, install=not args.no_install, rebuild=args.rebuild)
        print(result.wheel)
        return 0
