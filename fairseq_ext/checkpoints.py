"""Round checkpoints that plain `fairseq-generate` loads on torch >= 2.6, whose default `torch.load` is
weights-only: what such a loader refuses is stored as plain data. A round resumes from the newest whole checkpoint:
fairseq writes its first checkpoint of a save atomically but copies it to the others (checkpoint_last.pt among them)
in place, so a kill mid-copy leaves a torn file beside the whole one it was copied from."""
import argparse
import re
import zipfile
from pathlib import Path
from typing import Optional, Tuple

import torch

from lth_plugins.atomic import atomic_write_bytes

# fairseq's own checkpoints of a save: by update interval, by epoch, the last one
RESUMABLE = re.compile(r"checkpoint(_\d+_\d+|\d+|_last)\.pt")
NO_WHOLE_CHECKPOINT = "no_whole_checkpoint.pt"  # never written: fairseq finds nothing to restore


def weights_only_safe(obj):
    """Replace what torch's weights_only unpickler refuses (argparse.Namespace, numpy scalars, other objects)
    by plain dicts / Python scalars / strings. fairseq reads a dict model config back as a DictConfig."""
    if isinstance(obj, argparse.Namespace):
        return {k: weights_only_safe(v) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return type(obj)((k, weights_only_safe(v)) for k, v in obj.items()) if type(obj) in (dict,) else \
            {k: weights_only_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [weights_only_safe(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(weights_only_safe(v) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.Tensor, torch.Size, torch.dtype,
                                       torch.device)):
        return obj
    try:
        import numpy as np
        if isinstance(obj, np.generic):
            return obj.item()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


def torn(path) -> Optional[str]:
    """Why the file at `path` is not a whole checkpoint as torch.save writes it (a zip archive, whose directory
    comes last), or None. A file in torch's legacy format is taken to be whole."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if not head:
            return "it is empty"
        if head != b"PK\x03\x04":
            return None
        with zipfile.ZipFile(path) as z:
            z.infolist()
    except zipfile.BadZipFile as e:
        return f"it ends before its zip directory ({e})"
    except OSError as e:
        return f"it cannot be read ({e})"
    return None


def resumable_checkpoint(path, repair: bool) -> Tuple[str, Optional[str]]:
    """The checkpoint to resume from in place of `path` (fairseq's checkpoint_last.pt), and a line saying why when
    it is not `path`: a torn `path` gives the newest whole checkpoint of its folder, or, when none is whole, a path
    that does not exist (the round starts again). Every rank gets the same answer. `repair`: replace the torn `path`
    by that whole checkpoint (atomically), so that what reads checkpoint_last.pt later (the round's evaluation)
    reads a whole file; one rank repairs."""
    path = Path(path)
    why = torn(path) if path.is_file() else None
    if why is None:
        return str(path), None
    candidates = sorted((p for p in path.parent.iterdir() if RESUMABLE.fullmatch(p.name) and p != path),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    whole = next((p for p in candidates if torn(p) is None), None)
    if whole is None:
        return str(path.with_name(NO_WHOLE_CHECKPOINT)), (
            f"{path} is torn ({why}) and no other checkpoint of the round is whole: the round starts again")
    if repair:
        atomic_write_bytes(path, whole.read_bytes())
    return str(whole), f"{path} is torn ({why}): resuming from {whole.name}, the newest whole checkpoint"
