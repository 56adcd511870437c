"""Exceptions with messages meant for the person at the terminal."""


class LotteryError(Exception):
    """Base class of every error the lottery engine raises on bad input or bad state."""


class LotteryConfigError(LotteryError, ValueError):
    """A hyperparameter or flag is invalid."""


class MaskError(LotteryError):
    """A mask file is unreadable or does not fit the model."""


class RunStoreError(LotteryError):
    """A run directory is missing, locked, or belongs to another configuration."""


class SweepError(LotteryError):
    """A sweep's config file, directory or jobs are invalid."""


class RoundContractError(LotteryError):
    """An adapter broke a rule of the round (its first update, a fresh optimizer, the end of the schedule)."""
