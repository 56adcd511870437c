"""The ranks of a distributed fairseq run: their number, the collectives the round loop needs (every rank
compares its masks, agrees on the rounds to train) and the watchdog that stops them all when one dies."""
import contextlib
import os
from typing import List

import torch

from lth_plugins.errors import LotteryError
from lth_plugins.peers import PeerWatchdog


def world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def gather_strings(s: str) -> List[str]:
    """`s` of every rank, in rank order."""
    if world_size() == 1:
        return [s]
    out = [None] * world_size()
    torch.distributed.all_gather_object(out, s)
    return out


def broadcast_object(obj):
    """Rank 0's `obj` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world_size() > 1:
        torch.distributed.barrier()


@contextlib.contextmanager
def watched_peers():
    """A rank that dies makes the others stop (naming it) instead of hanging in a collective; a rank that
    finishes waits for the others before it leaves (rank 0 hosts the store they still watch)."""
    # LTH_PEER_TIMEOUT_S: seconds without a heartbeat after which a rank is taken for dead
    watchdog = PeerWatchdog.for_default_group(timeout=float(os.environ.get("LTH_PEER_TIMEOUT_S", 30)))
    if watchdog is None:
        yield
        return
    finished = False
    try:
        yield
        finished = True
    except LotteryError:  # the same clear error on every rank: no peer to blame
        raise
    except Exception:  # e.g. gloo's "connection closed by peer": which peer?
        watchdog.wait_for_verdict()
        raise
    finally:
        watchdog.stop(finished=finished)
        if finished:
            barrier()
