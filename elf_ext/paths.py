"""Paths ELF's loader takes from the environment: ``model_file`` (this plugin's model file) and ``game``.

ELF imports both by path: it puts the folder on ``sys.path`` and ``__import__``s the basename, so the paths
are given without ``.py``.
"""
import importlib.util
from pathlib import Path

MODEL_NAME = "actor_critic_lottery"


def model_file() -> str:
    """The plugin's ELF model file, as ELF's ``model_file`` takes it (no ``.py``)."""
    return str(Path(__file__).resolve().with_name("lottery_model.py"))[:-3]


class ElfNotFoundError(ImportError):
    """ELF (the ``elf-rl`` distribution) is not installed."""


def atari_game_file() -> str:
    """ELF's Atari game loader (``atari/game.py`` of the ELF tree) as installed by ``elf-rl``, without ``.py``."""
    for name in ("atari.game", "elf_atari.game", "atari_game_loader"):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            return spec.origin[:-3]
    spec = importlib.util.find_spec("atari_game")  # the compiled module; ELF's game.py sits next to it
    if spec is not None and spec.origin:
        game = Path(spec.origin).with_name("game.py")
        if game.is_file():
            return str(game)[:-3]
    raise ElfNotFoundError("ELF's Atari game is not installed (no atari_game module / atari/game.py): build and "
                           "install elf-rl (`lth deps build elf --source ELF_TREE`) or set game=PATH/atari/game")
