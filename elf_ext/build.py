"""``lth deps build elf``: the ``elf-rl`` wheel from an unmodified ELF tree (1f79017, checkout or tarball).

Steps, in a private copy of the tree: ALE's C++ library from ale-py's source distribution on PyPI (shared,
bundled in the wheel as ``elf_rl.libs/libale.so``), the edits of :mod:`elf_ext.source_edits`, the
``atari_game`` module against pip's pybind11, then the wheel: ``rlpytorch``, ``elf`` (its Python files),
``elf_atari`` (ELF's ``atari/game.py`` and ``model.py``) and the top-level ``atari_game``
module, which ``game.py`` imports by that name. ROMs are not in it: they come from the ale-py wheel, a
declared requirement.
"""
import os
import platform
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

from lth_deps import BuildError, SourceBuild, run_step
from lth_deps.cache import cache_root
from lth_deps.edits import apply_edits
from lth_deps.wheel import write_wheel

from . import source_edits

ALE_VERSION = "0.12.1"
PYBIND11_VERSION = "3.0.1"
VERSION = "0.1.0"
LIBS = "elf_rl.libs"
REQUIRES = ["torch", "numpy", "tqdm", f"ale-py=={ALE_VERSION}"]
PY_PACKAGES = ("rlpytorch", "elf")  # elf_python (ELF's pure-Python games, zmq) is not needed for Atari
ATARI_FILES = ("game.py", "model.py")


def build_jobs() -> int:
    """Parallel compile jobs: ``CMAKE_BUILD_PARALLEL_LEVEL`` if set, else the CPUs this process may use."""
    env = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, len(os.sched_getaffinity(0)))


class ElfBuild(SourceBuild):
    name = "elf"
    dist_name = "elf-rl"
    expected_commit = source_edits.ELF_COMMIT
    apt_packages = ["cmake", "g++", "make", "pkg-config", "libtbb-dev", "zlib1g-dev"]

    def identify(self, tree: Path) -> None:
        tree = Path(tree)
        needed = ["atari/atari_game.cc", "elf/utils_elf.py", "rlpytorch/__init__.py", "vendor/CMakeLists.txt"]
        missing = [p for p in needed if not (tree / p).is_file()]
        if missing:
            raise BuildError(f"{tree} is not an ELF tree (github.com/facebookresearch/ELF): missing "
                             f"{', '.join(missing)}")

    def build_files(self) -> List[Path]:
        return sorted(Path(m.__file__) for m in (sys.modules[__name__], source_edits))

    def build_wheel(self, tree: Path, wheel_dir: Path, log: Callable[[str], None]) -> Path:
        tree = Path(tree)
        with tempfile.TemporaryDirectory(prefix="elf-rl-", dir=tree.parent) as work:
            work = Path(work)
            ale = build_ale(work, log)
            apply_edits(tree, source_edits.EDITS, f"ELF {self.expected_commit}", log)
            module = build_atari_module(tree, work, ale, log)
            files = wheel_files(tree, module, ale / "lib" / "libale.so")
            made = write_wheel(wheel_dir, self.dist_name, VERSION, files, REQUIRES,
                               summary="ELF (facebookresearch/ELF) Python side and Atari game, built by lth-plugins",
                               license_file=tree / "LICENSE")
            log(f"wrote {made.name} ({len(files)} files)")
            return made


def _isolated_env(work: Path, **extra) -> Dict[str, str]:
    """The build's environment: git finds no repository above `work` (ALE's CMake stamps the enclosing
    repository's commit into its version string, so the build would depend on where it is run from)."""
    return dict(os.environ, GIT_CEILING_DIRECTORIES=str(work), **extra)


def _pip(*args) -> List[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def ale_prefix() -> Path:
    """Where ALE's library is kept once built: the same library serves every Python version, so a wheel for a
    second Python (the GPU machine's) compiles only ELF's module."""
    return cache_root() / "ale" / f"{ALE_VERSION}-{platform.machine()}"


def build_ale(work: Path, log) -> Path:
    """ALE's C++ library, from ale-py's sdist, installed under `ale_prefix()` with an ``ale.pc`` for ELF's CMake;
    built once (a half-copied prefix is never used: it appears by one rename)."""
    kept = ale_prefix()
    if (kept / "lib" / "pkgconfig" / "ale.pc").is_file():
        log(f"ALE {ALE_VERSION}: the library built before, {kept}")
        return kept
    dl, prefix, bld = work / "ale-sdist", work / "ale", work / "ale-build"
    env = _isolated_env(work)
    run_step(_pip("download", "-q", "--no-deps", "--no-binary", "ale-py", f"ale-py=={ALE_VERSION}", "-d", dl),
             log, what=f"download the ale-py {ALE_VERSION} source distribution")
    sdists = list(dl.glob("ale_py-*.tar.gz"))
    if len(sdists) != 1:
        raise BuildError(f"pip download of ale-py=={ALE_VERSION} gave {[p.name for p in dl.iterdir()]}, "
                         "not one .tar.gz source distribution")
    with tarfile.open(sdists[0]) as tf:
        tf.extractall(work, filter="data")
    src = work / sdists[0].name[:-len(".tar.gz")]
    run_step(["cmake", "-S", src, "-B", bld, "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_CPP_LIB=ON",
              "-DBUILD_PYTHON_LIB=OFF", "-DSDL_SUPPORT=OFF", "-DBUILD_SHARED_LIBS=ON",
              f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DCMAKE_INSTALL_LIBDIR=lib"], log, cwd=work, env=env,
             what="ALE: cmake configure")
    run_step(["cmake", "--build", bld, "-j", str(build_jobs())], log, cwd=work, env=env,
             what=f"ALE: compile ({build_jobs()} jobs, a few minutes)")
    run_step(["cmake", "--install", bld], log, cwd=work, env=env, what="ALE: install")
    pc = prefix / "lib" / "pkgconfig"
    pc.mkdir(parents=True, exist_ok=True)
    # ALE 0.12 installs only a CMake package; ELF asks pkg-config for `ale` (headers are included as <ale/...>)
    (pc / "ale.pc").write_text(f"prefix={kept}\nName: ale\nDescription: Arcade Learning Environment\n"
                               f"Version: {ALE_VERSION}\nCflags: -I${{prefix}}/include\n"
                               "Libs: -L${prefix}/lib -lale\n")
    kept.parent.mkdir(parents=True, exist_ok=True)
    staged = kept.with_name(f"{kept.name}.tmp{os.getpid()}")
    shutil.copytree(prefix, staged, symlinks=True)
    if kept.exists() and not (kept / "lib" / "pkgconfig" / "ale.pc").is_file():
        shutil.rmtree(kept)  # left by a copy that did not finish
    try:
        os.replace(staged, kept)
    except OSError:  # another build kept its own meanwhile: the same library
        shutil.rmtree(staged)
    return kept


def build_atari_module(tree: Path, work: Path, ale: Path, log) -> Path:
    """Compile only ELF's ``atari_game`` target (the benchmark targets do not build and are not needed)."""
    pyb = work / "pybind11"
    run_step(_pip("install", "-q", "--no-deps", "--target", pyb, f"pybind11=={PYBIND11_VERSION}"), log,
             what=f"pybind11 {PYBIND11_VERSION} (build only)")
    pyb_dir = pyb / "pybind11" / "share" / "cmake" / "pybind11"
    if not (pyb_dir / "pybind11Config.cmake").is_file():
        raise BuildError(f"pybind11 {PYBIND11_VERSION} has no CMake package at {pyb_dir}")
    bld = work / "elf-build"
    env = _isolated_env(work, PKG_CONFIG_PATH=os.pathsep.join(
        p for p in (str(ale / "lib" / "pkgconfig"), os.environ.get("PKG_CONFIG_PATH")) if p))
    run_step(["cmake", "-S", tree / "atari", "-B", bld, "-DCMAKE_BUILD_TYPE=Release", f"-Dpybind11_DIR={pyb_dir}",
              f"-DPython_EXECUTABLE={sys.executable}", f"-DPYTHON_EXECUTABLE={sys.executable}",
              # the module finds libale.so in the wheel's elf_rl.libs/, not in this temp folder
              "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON", f"-DCMAKE_INSTALL_RPATH=$ORIGIN/{LIBS}"],
             log, cwd=work, env=env, what="ELF: cmake configure")
    run_step(["cmake", "--build", bld, "--target", "atari_game", "-j", str(build_jobs())], log, cwd=work, env=env,
             what="ELF: compile atari_game")
    built = sorted((tree / "atari").glob("atari_game*.so"))  # ELF writes the module into its source folder
    if len(built) != 1:
        raise BuildError(f"ELF's build made {[p.name for p in built]} in {tree / 'atari'}, expected one "
                         "atari_game module")
    return built[0]


def wheel_files(tree: Path, module: Path, libale: Path) -> Dict[str, Path]:
    """Archive name -> file: the Python packages (their .py files), elf_atari, the module and libale.so."""
    files: Dict[str, Path] = {}
    for pkg in PY_PACKAGES:
        for f in (tree / pkg).rglob("*.py"):
            files[f.relative_to(tree).as_posix()] = f
    init = tree / "atari" / "__init__.py"
    init.write_text('"""ELF\'s Atari game loader (game.py) and model (model.py); ELF loads them by path."""\n')
    for name in ATARI_FILES + ("__init__.py",):
        files[f"elf_atari/{name}"] = tree / "atari" / name
    files[module.name] = module
    files[f"{LIBS}/libale.so"] = libale
    return files
