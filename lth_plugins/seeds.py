"""Seeds derived from a run's seed, one formula each, so that a resumed run draws what an uninterrupted one did."""
import zlib


def round_seed(seed: int, k: int) -> int:
    """The seed of round k of a run with seed `seed`: distinct per round and per base seed."""
    return 1_000_003 * (seed + 1) + k


def mixed_seed(seed: int, *parts) -> int:
    """A 32-bit seed for one purpose within a run (a parameter, a chunk, an epoch's data order), stable across
    processes and versions of Python (no hash randomization)."""
    return zlib.crc32(":".join(str(p) for p in (seed, *parts)).encode())
