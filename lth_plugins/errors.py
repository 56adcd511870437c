"""Exceptions with messages meant for the person at the terminal, and how a command ends on them."""
import sys
from typing import Callable, Optional, Sequence, Tuple


class LotteryError(Exception):
    """Base class of every error the lottery engine raises on bad input or bad state."""


class LotteryConfigError(LotteryError, ValueError):
    """A hyperparameter or flag is invalid; `setting`: the LotteryConfig field it is about, when it is one (a
    framework names it by its flag)."""

    def __init__(self, message: str = "", setting: Optional[str] = None):
        super().__init__(message)
        self.setting = setting


class MaskError(LotteryError):
    """A mask file is unreadable or does not fit the model."""


class RunStoreError(LotteryError):
    """A run directory is missing, locked, or belongs to another configuration."""


class SweepError(LotteryError):
    """A sweep's config file, directory or jobs are invalid."""


class RoundContractError(LotteryError):
    """An adapter broke a rule of the round (its first update, a fresh optimizer, the end of the schedule)."""


# The exit code of a command that refused its input or its run's state: the same refusal would come again, so a
# scheduler's retry budget does not count it as a crash (sweep/retries.py).
REFUSED = 2
# The exit code of a command stopped by Ctrl-C (128 + SIGINT, as a shell reports it): the same command continues.
INTERRUPTED = 130


def refusal(label: str, error: Exception) -> SystemExit:
    """The exit of a process refused by `error`: its one line `LABEL: MESSAGE` on stderr, exit code REFUSED."""
    print(f"{label}: {error}", file=sys.stderr, flush=True)
    return SystemExit(REFUSED)


def run_command(body: Callable[[], Optional[int]], label: str = "error",
                failures: Sequence[Tuple[type, str, int]] = (), spell: Callable[[str], str] = str) -> int:
    """Run a command's body and return its exit code; an expected failure ends it with one line on stderr instead of
    a traceback: each of `failures` (exception class, what failed, exit code), checked first, a LotteryError (REFUSED)
    and Ctrl-C (130). Anything else propagates. `spell`: the message with the flags as the command spells them."""
    try:
        return body() or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as e:
        for cls, what, code in failures:
            if isinstance(e, cls):
                print(f"{label}: {what}{spell(str(e))}", file=sys.stderr)
                return code
        if isinstance(e, LotteryError):
            print(f"{label}: {spell(str(e))}", file=sys.stderr)
            return REFUSED
        raise
