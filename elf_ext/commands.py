"""``lth`` subcommands of the ELF adapter (entry points in ``lth_plugins.commands``)."""
from lth_plugins.commands import Command


class ElfModelFileCommand(Command):
    help = "print the path to give ELF as model_file (model=actor_critic_lottery)"

    def run(self, args):
        from .paths import model_file

        print(model_file())
        return 0


class ElfGameFileCommand(Command):
    help = "print the path of ELF's installed Atari game loader, to give ELF as game"

    def run(self, args):
        import sys

        from .paths import ElfNotFoundError, atari_game_file

        try:
            print(atari_game_file())
        except ElfNotFoundError as e:
            print(f"lth: {e}", file=sys.stderr)
            return 2
        return 0
