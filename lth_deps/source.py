"""An upstream tree as a build reads it: a checkout folder or a tarball (such as a ``git archive``), hashed over
its sorted files, contents and executable bits (``.git``, ``__pycache__`` and ``*.pyc`` ignored), its git commit,
and a writable private copy for the builder to edit. The source itself is never modified."""
import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

from .steps import BuildError

IGNORED_DIRS = {".git", "__pycache__"}


def git_commit(tree: Path) -> Optional[str]:
    """The HEAD commit of a git checkout, else None."""
    if not (Path(tree) / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _ignored(parts: Sequence[str]) -> bool:
    return any(p in IGNORED_DIRS for p in parts[:-1]) or parts[-1] in IGNORED_DIRS or parts[-1].endswith(".pyc")


class Source:
    """A checkout folder or a tarball of one upstream tree, read without modifying it."""

    def __init__(self, path):
        self.path = Path(path).expanduser().resolve()
        if not self.path.exists():
            raise BuildError(f"source {str(path)!r} does not exist (give a checkout folder or a .tar/.tar.gz)")
        if self.path.is_dir():
            self.kind = "dir"
        elif tarfile.is_tarfile(self.path):
            self.kind = "tar"
        else:
            raise BuildError(f"source {str(path)!r} is neither a folder nor a tar archive")
        self._hash: Optional[str] = None

    def _tar_top(self, members) -> Optional[str]:
        """The single top folder of the archive (stripped, as ``git archive --prefix`` adds one), or None."""
        tops = {m.name.split("/", 1)[0] for m in members}
        if len(tops) == 1:
            top = tops.pop()
            if any(m.name == top and m.isdir() or m.name.startswith(top + "/") for m in members):
                return top
        return None

    def _entries(self) -> Iterator[Tuple[str, str, bytes]]:
        """(relative posix path, kind 'f'/'x'/'l', contents or link target) of every file, in any order."""
        if self.kind == "dir":
            for dirpath, dirnames, filenames in os.walk(self.path):
                dirnames[:] = [d for d in dirnames if d not in IGNORED_DIRS]
                for fn in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                    full = os.path.join(dirpath, fn)
                    rel = os.path.relpath(full, self.path).replace(os.sep, "/")
                    if _ignored(rel.split("/")):
                        continue
                    if os.path.islink(full):
                        yield rel, "l", os.readlink(full).encode()
                    elif os.path.isfile(full):
                        with open(full, "rb") as f:
                            yield rel, "x" if os.access(full, os.X_OK) else "f", f.read()
            return
        try:
            with tarfile.open(self.path) as tf:
                members = tf.getmembers()
                top = self._tar_top(members)
                for m in members:
                    rel = m.name[len(top) + 1:] if top else m.name
                    if not rel or m.isdir() or _ignored(rel.split("/")):
                        continue
                    if m.issym() or m.islnk():
                        yield rel, "l", m.linkname.encode()
                    elif m.isfile():
                        yield rel, "x" if m.mode & 0o111 else "f", tf.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BuildError(f"cannot read the tar archive {self.path}: {e}") from e

    def content_hash(self) -> str:
        """sha256 over the sorted file list; the same tree gives the same hash as a folder or a tarball."""
        if self._hash is None:
            digests = sorted((rel, kind, hashlib.sha256(data).hexdigest()) for rel, kind, data in self._entries())
            if not digests:
                raise BuildError(f"source {self.path} holds no files")
            h = hashlib.sha256()
            for rel, kind, d in digests:
                h.update(f"{rel}\0{kind}\0{d}\n".encode())
            self._hash = h.hexdigest()
        return self._hash

    def commit(self, builder) -> Optional[str]:
        """The git commit: the checkout's HEAD (as `builder` reads it), or the commit ``git archive`` writes into
        a tarball's header."""
        if self.kind == "dir":
            return builder.source_commit(self.path)
        try:
            with tarfile.open(self.path) as tf:
                comment = tf.pax_headers.get("comment", "").strip()
        except (tarfile.TarError, OSError, EOFError):
            return None
        return comment if len(comment) == 40 and all(c in "0123456789abcdef" for c in comment) else None

    def materialize(self, dest: Path) -> Path:
        """A writable copy of the tree at `dest` (same ignore rules as the hash); returns its root."""
        if self.kind == "dir":
            shutil.copytree(self.path, dest, symlinks=True,
                            ignore=lambda d, names: [n for n in names if n in IGNORED_DIRS or n.endswith(".pyc")])
            return dest
        dest.mkdir(parents=True)
        with tarfile.open(self.path) as tf:
            members = tf.getmembers()
            top = self._tar_top(members)
            tf.extractall(dest, filter="data")
        return dest / top if top else dest
