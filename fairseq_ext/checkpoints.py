"""Round checkpoints that plain `fairseq-generate` loads on torch >= 2.6, whose default `torch.load` is
weights-only: what such a loader refuses is stored as plain data."""
import argparse

import torch


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
