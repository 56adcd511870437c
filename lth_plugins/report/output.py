"""Writing the report folder all at once: files are built in a staging folder next to OUT and moved in only
when every one of them is written, so a failure leaves nothing behind. A manifest lists the report's own
files: a new report replaces them (and drops the stale ones) and never touches anything else in OUT."""
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, List

from ..atomic import umask_temp_dir
from .collect import ReportError

MANIFEST = ".lth-report.json"


def _previous(out: Path) -> List[str]:
    path = out / MANIFEST
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def check_target(out: Path, files: Iterable[str]) -> None:
    """Refuse before any work when OUT is a file, a folder of runs or data, or holds a file of the same name that
    is not ours."""
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out} exists and is not a directory; choose another -o")
    if not out.exists():
        return
    kind = _others_folder(out)
    if kind:
        raise ReportError(f"{out} is {kind}: the report's files would go among its own; choose another -o "
                          f"(e.g. a new folder beside it)")
    ours = set(_previous(out))
    clash = [f for f in files if (out / f).exists() and f not in ours]
    if clash:
        raise ReportError(f"{out} already holds {', '.join(clash[:5])}, not written by lth report; "
                          f"choose another -o or move those files away")


def _others_folder(out: Path) -> str:
    """What OUT is when it belongs to a run, a sweep or a framework's data ('' when none of them): a run directory
    (its config.json), a sweep directory (its sweep.json), a fairseq data folder (dictionaries, binarized
    files)."""
    from ..store import CONFIG, data_files
    from ..sweep.state import SWEEP_FILE

    if (out / CONFIG).is_file():
        return f"a run directory (it holds {CONFIG})"
    if (out / SWEEP_FILE).is_file():
        return f"a sweep directory (it holds {SWEEP_FILE})"
    data = data_files(out)
    return f"a data folder (it holds {data[0]})" if data else ""


class Staging:
    """with Staging(out) as st: write under st.path(rel) ...; st.commit(files). Removed on any failure."""

    def __init__(self, out):
        self.out = Path(out)
        anchor = self.out.parent
        while not anchor.exists():
            anchor = anchor.parent
        self.dir = umask_temp_dir(f".{self.out.name}.report-", anchor)

    def path(self, rel: str) -> Path:
        p = self.dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    def commit(self, files: List[str]) -> None:
        check_target(self.out, files)
        manifest = json.dumps({"files": sorted(files)}, indent=1) + "\n"
        if not self.out.exists():  # one rename: the whole report appears at once
            self.path(MANIFEST).write_text(manifest)
            self.out.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.dir, self.out)
            return
        stale = set(_previous(self.out)) - set(files)
        for rel in files:
            target = self.out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dir / rel, target)
        for rel in stale:
            target = self.out / rel
            if target.is_file():
                target.unlink()
        (self.dir / MANIFEST).write_text(manifest)
        os.replace(self.dir / MANIFEST, self.out / MANIFEST)
