"""flare-rl: the FLARE wheel `lth deps build flare` makes from the upstream tree, and its installation in this venv.

The upstream tarball is $FLARE_SRC or ../shared/third_party/flare-33b71b4.tar.gz (CI has it; a skip there fails CI).
"""
import os
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from lth_deps import BuildError, build
from lth_deps.source import Source

REPO = Path(__file__).resolve().parents[2]
TARBALL = Path(os.environ.get("FLARE_SRC") or REPO.parent / "shared" / "third_party" / "flare-33b71b4.tar.gz")

needs_source = pytest.mark.skipif(not TARBALL.exists(), reason=f"needs FLARE's upstream source ({TARBALL})")


def _installed_flare_rl():
    out = subprocess.run([sys.executable, "-m", "pip", "show", "-f", "flare-rl"], capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


def _has_dist(name):
    try:
        return bool(version(name))
    except PackageNotFoundError:
        return False


needs_installed = pytest.mark.skipif(not _has_dist("flare-rl"),
                                     reason="flare-rl is not installed (lth deps build flare --source ...)")


def wheel_files(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


@needs_installed
def test_pip_show_and_import_flare_in_the_venv(tmp_path):
    info = _installed_flare_rl()
    assert "Name: flare-rl" in info and "flare/framework/manager.py" in info
    code = ("import collections, flare, flare.framework.common_functions as cf, flare.framework.manager; "
            "print(flare.__file__); print(hasattr(collections, 'Iterable'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FLARE_ROOT")})
    assert out.returncode == 0, out.stderr
    where, alias = out.stdout.split()
    assert "-packages" in where and where.endswith("flare/__init__.py")
    assert alias == "False", "FLARE imports without a collections.Iterable alias (fixed in the wheel)"


@needs_source
def test_checkout_and_tarball_build_the_same_wheel_and_the_cache_serves_the_second(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LTH_CACHE", str(tmp_path / "cache"))
    with tarfile.open(TARBALL) as tf:
        tf.extractall(tmp_path / "x", filter="data")
    checkout = tmp_path / "x" / "flare"
    (checkout / "flare" / "__pycache__").mkdir()  # a checkout someone ran from
    (checkout / "flare" / "__pycache__" / "junk.cpython-311.pyc").write_bytes(b"\0")
    from flare_ext.build import FlareBuild

    from_tar = build(FlareBuild(), TARBALL, install=False)
    assert from_tar.commit.startswith("33b71b4")
    from_dir = build(FlareBuild(), checkout, install=False, rebuild=True)
    assert from_dir.key == from_tar.key and from_dir.commit is None
    a, b = wheel_files(from_tar.wheel), wheel_files(from_dir.wheel)
    assert a == b
    assert b"from collections.abc import Iterable" in a["flare/framework/common_functions.py"]
    assert "flare/framework/manager.py" in a and not any("/tests/" in n or "examples" in n for n in a)
    assert "from collections import Iterable" in (checkout / "flare/framework/common_functions.py").read_text()
    capsys.readouterr()
    p = subprocess.run([sys.executable, "-m", "lth_plugins.cli", "deps", "build", "flare", "--source", str(TARBALL),
                        "--no-install"], capture_output=True, text=True, env=dict(os.environ))
    assert p.returncode == 0, p.stderr
    assert "cached wheel" in p.stderr and p.stdout.strip() == str(from_tar.wheel)

    if _has_dist("flare-rl"):  # what is installed here is exactly this wheel's flare package
        import flare

        root = Path(flare.__file__).parent.parent
        for name, data in a.items():
            if name.startswith("flare/"):
                assert (root / name).read_bytes() == data, name


@needs_source
def test_sources_that_are_not_flare_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LTH_CACHE", str(tmp_path / "cache"))
    from flare_ext.build import FlareBuild

    with pytest.raises(BuildError, match=r"is not a FLARE tree \(https://github.com/idlrl/flare\): no "
                                         r"flare/__init__.py"):
        build(FlareBuild(), REPO, install=False)
    with tarfile.open(TARBALL) as tf:
        tf.extractall(tmp_path / "x", filter="data")
    with pytest.raises(BuildError, match="that is FLARE's package folder, give its parent"):
        build(FlareBuild(), tmp_path / "x" / "flare" / "flare", install=False)
    elf = TARBALL.with_name("ELF-1f79017.tar.gz")
    if elf.exists():
        with pytest.raises(BuildError, match="is not a FLARE tree"):
            build(FlareBuild(), elf, install=False)
    assert not list((tmp_path / "cache").rglob("*.whl"))
    assert Source(TARBALL).content_hash()  # the tarball itself is untouched and still readable
