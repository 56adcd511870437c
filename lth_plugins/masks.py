"""Pruning masks: one boolean tensor per selected parameter, saved bit-packed with a checksum."""
import hashlib
import json
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Mapping

import numpy as np
import torch

from .atomic import atomic_write_bytes
from .errors import MaskError

MAGIC = b"LTHMASK1"


class Mask(OrderedDict):
    """name -> bool tensor (True = the weight survives), on CPU."""

    @classmethod
    def ones(cls, named_params: Mapping[str, torch.Tensor]) -> "Mask":
        return cls((n, torch.ones(p.shape, dtype=torch.bool)) for n, p in named_params.items())

    def num_selected(self) -> int:
        return sum(m.numel() for m in self.values())

    def num_surviving(self) -> int:
        return sum(int(torch.count_nonzero(m)) for m in self.values())

    def density(self) -> float:
        return self.num_surviving() / max(1, self.num_selected())

    def densities(self) -> Dict[str, float]:
        """Fraction of surviving entries per parameter: the sparsity report."""
        return {n: int(torch.count_nonzero(m)) / max(1, m.numel()) for n, m in self.items()}

    def check_matches(self, named_params: Mapping[str, torch.Tensor], source: str = "mask") -> None:
        """Raise MaskError unless the mask covers exactly these parameters with the same shapes."""
        missing = [n for n in named_params if n not in self]
        unexpected = [n for n in self if n not in named_params]
        shapes = [f"{n}: mask {tuple(self[n].shape)} vs model {tuple(p.shape)}"
                  for n, p in named_params.items() if n in self and tuple(self[n].shape) != tuple(p.shape)]
        problems = []
        if missing:
            problems.append(f"no mask for {_names(missing)}")
        if unexpected:
            problems.append(f"mask for parameters the model lacks: {_names(unexpected)}")
        if shapes:
            problems.append("shape mismatch: " + "; ".join(shapes[:5]))
        if problems:
            raise MaskError(f"{source} does not match the model: " + " | ".join(problems))

    # --- persistence -----------------------------------------------------------------------------
    def _packed(self):
        for name, m in self.items():
            yield name, np.packbits(m.reshape(-1).numpy())

    def checksum(self) -> str:
        """sha256 over names, shapes and bits: equal on every rank iff the masks are identical."""
        h = hashlib.sha256()
        for name, bits in self._packed():
            h.update(f"{name}{tuple(self[name].shape)}".encode())
            h.update(bits.tobytes())
        return h.hexdigest()

    def save(self, path) -> None:
        """Bit-packed (about N/8 bytes) with a header of names and shapes and a payload checksum."""
        chunks, entries = [], []
        for name, bits in self._packed():
            entries.append({"name": name, "shape": list(self[name].shape), "bytes": int(bits.nbytes)})
            chunks.append(bits.tobytes())
        payload = b"".join(chunks)
        header = json.dumps({"format": 1, "entries": entries, "payload_bytes": len(payload),
                             "sha256": hashlib.sha256(payload).hexdigest()}).encode()
        atomic_write_bytes(path, MAGIC + struct.pack("<Q", len(header)) + header + payload)

    @classmethod
    def load(cls, path) -> "Mask":
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MaskError(f"mask file {path} does not exist") from None
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
            raise MaskError(f"mask file {path} is not a lottery mask file (bad header); it may be truncated")
        (hlen,) = struct.unpack("<Q", data[len(MAGIC):len(MAGIC) + 8])
        start = len(MAGIC) + 8
        try:
            header = json.loads(data[start:start + hlen])
        except ValueError:
            raise MaskError(f"mask file {path} has a corrupted or truncated header") from None
        payload = data[start + hlen:]
        if len(payload) != header["payload_bytes"]:
            raise MaskError(f"mask file {path} is truncated: payload has {len(payload)} bytes, "
                            f"expected {header['payload_bytes']}")
        if hashlib.sha256(payload).hexdigest() != header["sha256"]:
            raise MaskError(f"mask file {path} is corrupted: its checksum does not match its contents")
        mask, offset = cls(), 0
        for e in header["entries"]:
            n = int(np.prod(e["shape"], dtype=np.int64))
            bits = np.frombuffer(payload, dtype=np.uint8, count=e["bytes"], offset=offset)
            offset += e["bytes"]
            mask[e["name"]] = torch.from_numpy(np.unpackbits(bits, count=n).astype(bool)).reshape(e["shape"])
        return mask


def _names(names, limit=5):
    return ", ".join(names[:limit]) + (f" ... ({len(names) - limit} more)" if len(names) > limit else "")
