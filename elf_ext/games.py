"""Atari games of the paper (Table 1) and where their ROMs are: ale-py's wheel ships them (``ale_py/roms``)."""
import importlib.util
import os
from pathlib import Path
from typing import List, Optional

# Table 1, pixel control: game -> ROM file name (ALE's names, as in ale-py's roms folder)
PAPER_GAMES = {
    "Assault": "assault.bin",
    "Berzerk": "berzerk.bin",
    "Breakout": "breakout.bin",
    "Centipede": "centipede.bin",
    "Kangaroo": "kangaroo.bin",
    "Krull": "krull.bin",
    "Qbert": "qbert.bin",
    "Seaquest": "seaquest.bin",
    "SpaceInvaders": "space_invaders.bin",
}


class RomError(ValueError):
    """The ROM named by --rom_file / --rom_dir does not exist."""


def ale_roms_dir() -> Optional[Path]:
    """ale-py's ROM folder (found without importing ale_py, which loads its native library)."""
    spec = importlib.util.find_spec("ale_py")
    if spec is None or not spec.submodule_search_locations:
        return None
    roms = Path(list(spec.submodule_search_locations)[0]) / "roms"
    return roms if roms.is_dir() else None


def available_roms(dirs) -> List[str]:
    names = set()
    for d in dirs:
        if d and Path(d).is_dir():
            names.update(p.name for p in Path(d).glob("*.bin"))
    return sorted(names)


def resolve_rom(rom_file: str, rom_dir: Optional[str]) -> Path:
    """The ROM's path: `rom_dir/rom_file` if it exists, else ale-py's copy; RomError naming what exists."""
    if os.path.isabs(rom_file) and Path(rom_file).is_file():
        return Path(rom_file)
    candidates = [Path(rom_dir) / rom_file] if rom_dir else []
    roms = ale_roms_dir()
    if roms is not None:
        candidates.append(roms / rom_file)
    for c in candidates:
        if c.is_file():
            return c
    names = available_roms([rom_dir, roms])
    hint = (f"available: {', '.join(names)}" if names else
            "no ROMs found: install the ale-py wheel (pip install ale-py), which ships them")
    raise RomError(f"unknown ROM {rom_file!r}: not in {' or '.join(str(c.parent) for c in candidates) or '-'}; "
                   f"{hint}")
