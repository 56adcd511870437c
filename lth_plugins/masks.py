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

MAGIC = b"LTHMASK2"  # format 2: a sha256 of every preceding byte (header included) ends the file
MAGIC_V1 = b"LTHMASK1"  # format 1 (read only): the checksum covered the payload, not the header
_DIGEST = 32


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
        """Raise MaskError unless the mask covers exactly these parameters (the ones a run prunes: its model's,
        narrowed by its include/exclude) with the same shapes."""
        missing = [n for n in named_params if n not in self]
        unexpected = [n for n in self if n not in named_params]
        shapes = [f"{n}: mask {tuple(self[n].shape)} vs model {tuple(p.shape)}"
                  for n, p in named_params.items() if n in self and tuple(self[n].shape) != tuple(p.shape)]
        problems = []
        if missing:
            problems.append(f"no mask for {_names(missing)}")
        if unexpected:
            problems.append(f"mask for parameters this run does not prune (not in the model, or left out by its "
                            f"include/exclude): {_names(unexpected)}")
        if shapes:
            problems.append("shape mismatch: " + "; ".join(shapes[:5]))
        if problems:
            raise MaskError(f"{source} does not match the parameters this run prunes: " + " | ".join(problems))

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
        """Bit-packed (about N/8 bytes) after a header of names and shapes; the file ends with a sha256 of
        everything before it, so any change to the header or the bits is detected."""
        chunks, entries = [], []
        for name, bits in self._packed():
            entries.append({"name": name, "shape": list(self[name].shape), "bytes": int(bits.nbytes)})
            chunks.append(bits.tobytes())
        payload = b"".join(chunks)
        header = json.dumps({"format": 2, "entries": entries, "payload_bytes": len(payload)}).encode()
        body = MAGIC + struct.pack("<Q", len(header)) + header + payload
        atomic_write_bytes(path, body + hashlib.sha256(body).digest())

    @classmethod
    def load(cls, path) -> "Mask":
        """Raises MaskError naming the file for any damage: missing, truncated, edited or not a mask file."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MaskError(f"mask file {path} does not exist") from None
        except OSError as e:
            raise MaskError(f"mask file {path} cannot be read ({e.strerror})") from None
        if data.startswith(MAGIC_V1):
            return cls._load_v1(path, data)
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8 + _DIGEST:
            raise MaskError(f"mask file {path} is not a lottery mask file (bad header); it may be truncated")
        body, digest = data[:-_DIGEST], data[-_DIGEST:]
        if hashlib.sha256(body).digest() != digest:
            expected = _declared_size(data)
            if expected is not None and expected > len(data):
                raise MaskError(f"mask file {path} is truncated: {len(data)} bytes, its header declares "
                                f"{expected}")
            raise MaskError(f"mask file {path} is corrupted: its checksum does not match its contents")
        (hlen,) = struct.unpack("<Q", body[len(MAGIC):len(MAGIC) + 8])
        start = len(MAGIC) + 8
        try:
            header = json.loads(body[start:start + hlen])
            return cls._unpack(header["entries"], body[start + hlen:], header["payload_bytes"])
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
            raise MaskError(f"mask file {path} has an invalid header ({type(e).__name__}: {e})") from None

    @classmethod
    def _unpack(cls, entries, payload: bytes, payload_bytes: int) -> "Mask":
        if len(payload) != payload_bytes or sum(e["bytes"] for e in entries) != len(payload):
            raise ValueError(f"payload has {len(payload)} bytes, the header describes {payload_bytes}")
        mask, offset = cls(), 0
        for e in entries:
            n = int(np.prod(e["shape"], dtype=np.int64))
            if e["bytes"] != (n + 7) // 8:
                raise ValueError(f"entry {e['name']!r}: {e['bytes']} bytes for {n} entries")
            bits = np.frombuffer(payload, dtype=np.uint8, count=e["bytes"], offset=offset)
            offset += e["bytes"]
            mask[e["name"]] = torch.from_numpy(np.unpackbits(bits, count=n).astype(bool)).reshape(e["shape"])
        return mask

    @classmethod
    def _load_v1(cls, path: Path, data: bytes) -> "Mask":
        try:
            (hlen,) = struct.unpack("<Q", data[len(MAGIC_V1):len(MAGIC_V1) + 8])
            start = len(MAGIC_V1) + 8
            header = json.loads(data[start:start + hlen])
            payload = data[start + hlen:]
            if hashlib.sha256(payload).hexdigest() != header["sha256"]:
                raise ValueError("its checksum does not match its contents")
            return cls._unpack(header["entries"], payload, header["payload_bytes"])
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError, struct.error) as e:
            raise MaskError(f"mask file {path} is corrupted or truncated ({e})") from None


def _declared_size(data: bytes):
    """The file size an (unverified) format-2 header declares, or None when it cannot be read."""
    try:
        (hlen,) = struct.unpack("<Q", data[len(MAGIC):len(MAGIC) + 8])
        header = json.loads(data[len(MAGIC) + 8:len(MAGIC) + 8 + hlen])
        return len(MAGIC) + 8 + hlen + int(header["payload_bytes"]) + _DIGEST
    except Exception:
        return None


def _names(names, limit=5):
    return ", ".join(names[:limit]) + (f" ... ({len(names) - limit} more)" if len(names) > limit else "")
