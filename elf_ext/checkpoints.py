"""A round's own files in RUN_DIR/elf/round_KK (``RunStore.framework_dir``): ELF's checkpoints (its ModelSaver
writes one per epoch; the last N are kept, the round's final one always) and the resume point ``resume.pt``
(model, Adam, counters, finished games, learning curve), rewritten at every epoch's end and removed once the
round is recorded, so that a killed run redoes at most one epoch."""
import re
from pathlib import Path
from typing import List, Optional

import torch

from lth_plugins.atomic import atomic_torch_save
from lth_plugins.errors import RunStoreError

from . import FRAMEWORK

RESUME = "resume.pt"


class RoundFiles:
    def __init__(self, store, k: int, keep: int):
        self.k, self.keep = k, keep
        self.dir: Path = store.framework_dir(FRAMEWORK, k)

    @property
    def resume_path(self) -> Path:
        return self.dir / RESUME

    def attach_saver(self, saver) -> None:
        """Point ELF's ModelSaver at this round's folder, with `latest*` links to the kept checkpoints only."""
        from rlpytorch.trainer.utils import SymLink

        self.dir.mkdir(parents=True, exist_ok=True)
        self.saver = saver
        saver.args.save_dir = str(self.dir)
        saver.symlinker = SymLink(str(self.dir / saver.args.latest_symlink), latest_k=self.keep)

    def elf_checkpoints(self) -> List[Path]:
        """ELF's checkpoints of the round (``<save_prefix>-<step>.bin``), oldest first."""
        pattern = re.compile(re.escape(self.saver.args.save_prefix) + r"-(\d+)\.bin$")
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := pattern.match(p.name))]
        return [p for _, p in sorted(found)]

    def prune_elf_checkpoints(self) -> None:
        for path in self.elf_checkpoints()[:-self.keep]:
            path.unlink(missing_ok=True)

    def save_resume(self, state: dict) -> None:
        atomic_torch_save(self.resume_path, dict(state, round=self.k))

    def load_resume(self) -> Optional[dict]:
        """The resume point of an unfinished round (None: there is none, train the round from its start)."""
        if not self.resume_path.is_file():
            return None
        try:
            state = torch.load(self.resume_path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise RunStoreError(f"resume point {self.resume_path} is unreadable ({e}); delete it to train round "
                                f"{self.k} again from its start") from None
        if state.get("round") != self.k:
            raise RunStoreError(f"resume point {self.resume_path} belongs to round {state.get('round')}, not "
                                f"{self.k}; delete it to train round {self.k} again from its start")
        return state

    def discard_resume(self) -> None:
        self.resume_path.unlink(missing_ok=True)
