"""lth-plugins adapter for fairseq: the lottery-ticket procedure as a mode of `fairseq-train`.

Use it through fairseq's plugin mechanism::

    fairseq-train DATA --user-dir "$(lth fairseq-user-dir)" ... --lottery-prune [--lottery-rounds 20 ...]

fairseq imports this package while it builds its argument parser; importing it then adds the `--lottery-*`
flags to `fairseq-train` and, only when `--lottery-prune` is given, runs fairseq's own training `main` once per
pruning round (see `fairseq_ext.driver`). Without `--lottery-prune` fairseq is untouched. Importing the package
in a process that has not imported fairseq (e.g. `lth fairseq-user-dir`) installs nothing.
"""
import logging
import os
import sys

USER_DIR = os.path.dirname(os.path.abspath(__file__))


def user_dir() -> str:
    """The path to give fairseq's `--user-dir`."""
    return USER_DIR


def train_command(*args) -> list:
    """The argv of fairseq-train run by this interpreter. Not `python -m fairseq_cli.train`: that runs a second
    copy of the module as __main__, whose `cli_main` never sees the lottery's hook on `fairseq_cli.train.main`.
    Its messages name it fairseq-train (argparse would name it after python's `-c`)."""
    return [sys.executable, "-c", "import sys; sys.argv[0] = 'fairseq-train'; "
            "from fairseq_cli.train import cli_main; cli_main()", *map(str, args)]


def import_fairseq_quietly() -> None:
    """Import fairseq in a process that is not one of fairseq's commands (a driver script, a report). Importing it
    configures the root logger at DEBUG (its text-to-speech tasks call logging.basicConfig), so every library's
    debug lines would print afterwards, and it logs at INFO that tensorboardX is missing, which no lottery task
    uses. Both are undone here; a process that has imported fairseq already is left as it is."""
    if "fairseq" in sys.modules:
        return
    root = logging.getLogger()
    handlers, level, disabled = list(root.handlers), root.level, logging.root.manager.disable
    logging.disable(max(disabled, logging.INFO))
    try:
        import fairseq  # noqa: F401
    finally:
        logging.disable(disabled)
        root.handlers[:] = handlers
        root.setLevel(level)


def install() -> None:
    """Add the lottery flags to fairseq's training parser (idempotent)."""
    from .hooks import install as _install

    _install()


if "fairseq.options" in sys.modules:  # imported by fairseq's --user-dir machinery
    install()
