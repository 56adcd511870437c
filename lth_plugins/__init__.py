"""lth-plugins core: lottery-ticket pruning (Yu et al., ICLR 2020) independent of any training framework.

Masks (`masks`), parameter selection (`selection`), pruning strategies (`pruners`), resets (`resets`), in-place
mask enforcement through torch hooks (`enforce`), the resumable run store (`store`) and the round driver
(`run.LotteryRun`) that framework adapters use.
"""
from .errors import LotteryConfigError, LotteryError, MaskError, RunStoreError
from .hparams import LotteryConfig, ResetPoint, fraction_pruned, survivors
from .masks import Mask
from .run import LotteryRun
from .selection import select_parameters
from .store import RunStore

__version__ = "0.1.0"
__all__ = ["LotteryConfig", "LotteryConfigError", "LotteryError", "LotteryRun", "Mask", "MaskError", "ResetPoint",
           "RunStore", "RunStoreError", "fraction_pruned", "select_parameters", "survivors"]
