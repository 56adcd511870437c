"""elf-rl: the edits `lth deps build elf` makes to the ELF tree, its wheel writer, and the installed wheel (imports,
a Breakout game context that delivers batches). Cache behaviour is lth_deps' (tests/test_builds.py).

The upstream tarball is $ELF_SRC or ../shared/third_party/ELF-1f79017.tar.gz (CI has it; a skip there fails CI).
"""
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from elf_ext import source_edits
from elf_ext.build import ElfBuild
from lth_deps import BuildError, build, wheel
from lth_deps.edits import MARK, apply_edits
from lth_deps.source import Source

REPO = Path(__file__).resolve().parents[2]
TARBALL = Path(os.environ.get("ELF_SRC") or REPO.parent / "shared" / "third_party" / "ELF-1f79017.tar.gz")
SMOKE = Path(__file__).with_name("elf_smoke.py")
UPSTREAM = f"ELF {source_edits.ELF_COMMIT}"

needs_source = pytest.mark.skipif(not TARBALL.exists(), reason=f"needs ELF's upstream source ({TARBALL})")


def _elf_rl():
    try:
        return distribution("elf-rl")
    except PackageNotFoundError:
        return None


needs_installed = pytest.mark.skipif(_elf_rl() is None or importlib.util.find_spec("atari_game") is None,
                                     reason="elf-rl is not installed (lth deps build elf --source ELF_TREE)")


def _extract(tmp_path) -> Path:
    with tarfile.open(TARBALL) as tf:
        tf.extractall(tmp_path / "x", filter="data")
    return tmp_path / "x" / "ELF"


@needs_source
def test_edits_apply_to_elf_1f79017_and_its_python_compiles(tmp_path):
    before = Source(TARBALL).content_hash()
    tree = _extract(tmp_path)
    original = {e.path: (tree / e.path).read_text() for e in source_edits.EDITS}
    for f in sorted(tree.rglob("*.py")):  # upstream does not compile on Python 3.11 (async as a name)
        if f.relative_to(tree).as_posix() in ("elf/utils_elf.py", "rlpytorch/runner/parameter_server.py"):
            with pytest.raises(SyntaxError):
                compile(f.read_text(), str(f), "exec")
    lines = []
    apply_edits(tree, source_edits.EDITS, UPSTREAM, lines.append)
    assert lines == [f"applied {len(source_edits.EDITS)} edits to {len(original)} files"]
    assert all((tree / path).read_text() != text for path, text in original.items())
    for pkg in ("rlpytorch", "elf", "atari"):
        for f in (tree / pkg).rglob("*.py"):
            compile(f.read_text(), str(f), "exec")
    methods = "".join(p.read_text() for p in (tree / "rlpytorch" / "methods").glob("*.py"))
    assert ".data[0])" not in methods.replace("V.data[0].item())", "")
    cmake = (tree / "atari" / "CMakeLists.txt").read_text()
    assert 'set(CMAKE_CXX_FLAGS_RELEASE "-O3")' in cmake and "-O3 -march" not in cmake
    assert "CMAKE_CXX_STANDARD 17" in cmake and "find_package(pybind11" in cmake
    assert "add_subdirectory(pybind11)" not in (tree / "vendor" / "CMakeLists.txt").read_text()
    assert '"showinfo"' not in (tree / "atari" / "atari_game.cc").read_text().replace('no "showinfo"', "")
    assert Source(TARBALL).content_hash() == before  # the upstream tarball is only read


@needs_source
def test_a_tree_the_edits_do_not_fit_stops_with_the_file_and_the_reason(tmp_path):
    tree = _extract(tmp_path)
    cc = tree / "atari" / "atari_game.cc"
    cc.write_text(cc.read_text().replace('  _ale->setBool("showinfo", false);\n', ""))
    with pytest.raises(BuildError, match=r"atari/atari_game.cc: expected 1 occurrence.*showinfo.*found 0"):
        apply_edits(tree, source_edits.EDITS, UPSTREAM)
    (tree / "rlpytorch" / "model_base.py").unlink()
    with pytest.raises(BuildError, match=r"rlpytorch/model_base.py is missing .*torch.load"):
        apply_edits(tree, [e for e in source_edits.EDITS if e.path.endswith("model_base.py")], UPSTREAM)


def test_sources_that_are_not_elf_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LTH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BuildError, match=r"is not an ELF tree \(github.com/facebookresearch/ELF\): missing "
                                         r"atari/atari_game.cc, elf/utils_elf.py"):
        build(ElfBuild(), REPO, install=False)
    flare = TARBALL.with_name("flare-33b71b4.tar.gz")
    if flare.exists():
        with pytest.raises(BuildError, match="is not an ELF tree"):
            build(ElfBuild(), flare, install=False)
    assert not list((tmp_path / "cache").rglob("*.whl"))


def test_wheel_writer_makes_a_reproducible_installable_platform_wheel(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("X = 1\n")
    (tmp_path / "mod.so").write_bytes(b"\x7fELF not really")
    (tmp_path / "libx.so").write_bytes(b"lib")
    files = {"pkg/__init__.py": tmp_path / "pkg" / "__init__.py", "mod.cpython-311-x86_64-linux-gnu.so":
             tmp_path / "mod.so", "toy_dist.libs/libx.so": tmp_path / "libx.so"}
    out1, out2 = tmp_path / "w1", tmp_path / "w2"
    out1.mkdir(), out2.mkdir()
    w1 = wheel.write_wheel(out1, "toy-dist", "0.1.0", files, ["ale-py==0.12.1"], "toy")
    w2 = wheel.write_wheel(out2, "toy-dist", "0.1.0", files, ["ale-py==0.12.1"], "toy")
    assert w1.name == f"toy_dist-0.1.0-{wheel.platform_tag()}.whl" and w1.read_bytes() == w2.read_bytes()
    assert wheel.platform_tag().startswith(f"cp{sys.version_info[0]}{sys.version_info[1]}-")
    with zipfile.ZipFile(w1) as z:
        info = "toy_dist-0.1.0.dist-info"
        assert "Requires-Dist: ale-py==0.12.1" in z.read(f"{info}/METADATA").decode()
        assert z.read(f"{info}/top_level.txt").decode().split() == ["mod", "pkg"]
        assert z.getinfo("mod.cpython-311-x86_64-linux-gnu.so").external_attr >> 16 & 0o777 == 0o755
        record = [r.split(",") for r in z.read(f"{info}/RECORD").decode().split()]
        assert {r[0] for r in record} == set(z.namelist())
        for name, digest, size in record:
            if digest:
                data = z.read(name)
                assert int(size) == len(data) and digest == wheel._record_hash(data), name
    target = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, w1],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (target / "pkg" / "__init__.py").read_text() == "X = 1\n" and (target / "toy_dist.libs" / "libx.so").is_file()


@needs_installed
def test_installed_elf_rl_imports_from_anywhere_and_declares_ale_py(tmp_path):
    dist = _elf_rl()
    assert "ale-py==0.12.1" in (dist.requires or [])
    names = {str(f) for f in dist.files}
    assert {"rlpytorch/__init__.py", "elf/utils_elf.py", "elf_atari/game.py", "elf_atari/model.py",
            "elf_rl.libs/libale.so"} <= names
    assert any(n.startswith("atari_game.cpython-") for n in names) and not any(n.endswith(".h") for n in names)
    code = ("import inspect, json, atari_game, elf, rlpytorch, elf_atari.game as g, elf.utils_elf as u; "
            "print(json.dumps([atari_game.__file__, rlpytorch.__file__, inspect.getsource(u), g._ale_roms_dir()]))")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH", "ELF_ROOT")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    module, rl, utils_src, roms = json.loads(p.stdout)
    assert "-packages" in module and "-packages" in rl
    assert MARK in utils_src and "non_blocking" in utils_src  # the edited copy was packed
    assert (Path(roms) / "breakout.bin").is_file() and Path(roms).parts[-2:] == ("ale_py", "roms")
    assert hashlib.md5((Path(roms) / "breakout.bin").read_bytes()).hexdigest() == "f34f08e5eb96e500e851a80be3277a56"


@needs_installed
def test_breakout_game_context_delivers_actor_and_training_batches(tmp_path):
    out = tmp_path / "smoke.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, SMOKE, out], capture_output=True, text=True, cwd=tmp_path, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    seen = json.loads(out.read_text())
    assert seen["num_action"] == 4 and seen["rom_dir"].endswith(os.path.join("ale_py", "roms"))
    assert seen["actor"] and all(s == [1, 2, 12, 105, 80] for s in seen["actor"])  # hist_len 4 x RGB, 105x80
    (train,) = seen["train"]
    assert train["shape"] == [3, 2, 12, 105, 80] and 0 <= train["a_max"] < 4
    lo, hi = train["pixel_range"]
    assert hi > lo >= 0  # real screens, not zeros


@needs_installed
def test_several_collectors_per_group_keep_running(tmp_path):
    """16 games, batch 4: two collectors per group. Upstream's game threads called a std::function that had
    died with Start's stack frame whenever they started late (a busy machine): a segfault some batches in."""
    out = tmp_path / "smoke.json"
    p = subprocess.run([sys.executable, SMOKE, out, "16", "4", "6", "300"], capture_output=True, text=True,
                       cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    seen = json.loads(out.read_text())
    assert len(seen["actor"]) + len(seen["train"]) == 300 and len(seen["train"]) >= 20
    assert {tuple(t["shape"]) for t in seen["train"]} == {(6, 4, 12, 105, 80)}
