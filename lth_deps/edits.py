"""The one way a builder changes an upstream tree: a list of `Edit`s (file, old text or regular expression, new
text, reason, expected count) applied to the private copy. An edit that does not match (another commit) stops the
build naming the file and the reason; one whose new text is already there, the old gone, counts as done upstream."""
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .steps import BuildError

MARK = "lth-plugins build edit"  # the comment that marks an edited line in the built package


@dataclass(frozen=True)
class Edit:
    path: str          # relative to the tree's root
    old: str           # literal text, or a regular expression when `regex`
    new: str
    reason: str
    count: int = 1     # occurrences of `old` the tree must hold
    regex: bool = False


def apply_edits(tree: Path, edits: Sequence[Edit], upstream: str, log: Callable[[str], None] = lambda m: None) -> None:
    """Apply `edits` to the tree at `tree` in place (it must be a private copy). `upstream` names the tree the
    edits were written for (e.g. "ELF 1f79017"), in errors."""
    tree = Path(tree)
    for e in edits:
        f = tree / e.path
        if not f.is_file():
            raise BuildError(f"{upstream.split()[0]} tree {tree}: {e.path} is missing (needed for: {e.reason}); "
                             f"is this {upstream}?")
        text = f.read_text()
        pattern = re.compile(e.old if e.regex else re.escape(e.old))
        found = len(pattern.findall(text))
        if found == 0 and e.new in text:
            log(f"{e.path}: already fixed upstream ({e.reason})")
            continue
        if found != e.count:
            raise BuildError(f"{upstream.split()[0]} tree {tree}: {e.path}: expected {e.count} occurrence(s) of "
                             f"{e.old!r} ({e.reason}), found {found}; this builder knows {upstream}")
        f.write_text(pattern.sub(lambda m: e.new, text))
    log(f"applied {len(edits)} edits to {len({e.path for e in edits})} files")
