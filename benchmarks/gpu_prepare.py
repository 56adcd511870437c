"""The wheel folder that `benchmarks/gpu_checks.sh` installs on the GPU machine, which has no network: cp312
x86_64 wheels of everything its image lacks, and libtbb.so.12 (ELF's Atari module links it).

    python benchmarks/gpu_prepare.py prepare DIR   # build and download (network, a Python 3.12 interpreter)
    python benchmarks/gpu_prepare.py check DIR     # is DIR complete: one version of each, every need met

Versions are the ones this project's environment was tested with where it has them (the interpreter running this
script); elf-rl is built here with Python 3.12 from ELF_SRC; fairseq-fixed is PyPI's cp312 manylinux wheel.
"""
import argparse
import email.parser
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
PY = "3.12"
# The GPU machine's image as the device tool's KINDS.md lists it (read 2026-11-17): Python 3.12.3, torch 2.11.0.
# These are not carried; everything else a carried wheel needs is.
DEVICE_HAS = set(map(canonicalize_name, """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy
peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel
wrapt xarray xxhash yarl zipp""".split()))
# What the checks need beyond the image: this package (its fairseq and sweep extras), ELF's wheel (its own needs
# follow), gymnasium. FLARE's box2d and pygame (extra rl) are not needed on the GPU.
EXTRAS = {"lth-plugins": {"fairseq", "sweep"}}
ROOTS = ["gymnasium"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
LIBTBB = "libtbb.so.12"
MAX_MIB = 60  # a device call carries 64 MiB in all, the working tree included
ENV = {"python_version": PY, "python_full_version": PY + ".3", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
       "platform_machine": "x86_64", "os_name": "posix"}


class FolderError(SystemExit):
    pass


def log(msg):
    print(f"[gpu prepare] {msg}", file=sys.stderr, flush=True)


def python312() -> str:
    """$PYTHON312, else python3.12 on PATH, else pyenv's newest 3.12."""
    cands = [os.environ.get("PYTHON312"), shutil.which("python3.12")]
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    cands += sorted(glob.glob(f"{root}/versions/{PY}.*/bin/python{PY}"), reverse=True)
    for c in filter(None, cands):
        p = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                           text=True)
        if p.returncode == 0 and p.stdout.strip() == PY:
            return c
    raise FolderError(f"no Python {PY} interpreter found (set PYTHON312, or `pyenv install {PY}`)")


def wheel_meta(path: Path):
    """(canonical name, version, requirements) of a wheel."""
    name, ver, _, _ = parse_wheel_filename(path.name)
    with zipfile.ZipFile(path) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        msg = email.parser.Parser().parsestr(zf.read(meta).decode())
    return canonicalize_name(name), str(ver), [Requirement(r) for r in msg.get_all("Requires-Dist") or []]


def needs(name, reqs):
    """The requirements that apply on the device (cp312 Linux), with the extras chosen for `name`."""
    out = []
    for r in reqs:
        extras = EXTRAS.get(name, set()) | {""}
        if r.marker is None or any(Marker(str(r.marker)).evaluate(dict(ENV, extra=e)) for e in extras):
            out.append(r)
    return out


def pinned(req: Requirement) -> str:
    """`req` at the version this project's environment holds, when it holds one that fits."""
    try:
        v = version(req.name)
    except PackageNotFoundError:
        return str(Requirement(f"{req.name}{req.specifier}"))
    if req.specifier and not req.specifier.contains(v, prereleases=True):
        return str(Requirement(f"{req.name}{req.specifier}"))
    return f"{req.name}=={v}"


def download(py312: str, spec: str, folder: Path) -> None:
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    cmd = [py312, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:",
           "--python-version", PY, "--implementation", "cp", *plat, "-d", str(folder), spec]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode == 0:
        return
    # some pure-Python packages publish only a source distribution (antlr4-python3-runtime 4.9.3, hydra's need)
    with tempfile.TemporaryDirectory(prefix="gpu-sdist-") as tmp:
        q = subprocess.run([py312, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                            "--no-binary", ":all:", "-w", tmp, spec], capture_output=True, text=True)
        built = list(Path(tmp).glob("*-none-any.whl"))
        if q.returncode != 0 or len(built) != 1:
            raise FolderError(f"no cp312 x86_64 wheel of {spec} ({p.stderr.strip().splitlines()[-1:]}), and its "
                              f"source builds no pure-Python wheel ({q.stderr.strip().splitlines()[-1:]})")
        shutil.move(str(built[0]), folder / built[0].name)


def build_elf(py312: str, source: str, folder: Path) -> Path:
    """elf-rl built by `lth deps build`'s code under Python 3.12 (cached like any `lth deps build`)."""
    # The build code uses only torch-free modules of the core; its package's __init__ imports torch, which a
    # bare 3.12 interpreter lacks, so the package is entered without running it.
    code = ("import sys, types; root = sys.argv[1]; sys.path.insert(0, root); "
            "pkg = types.ModuleType('lth_plugins'); pkg.__path__ = [root + '/lth_plugins']; "
            "sys.modules['lth_plugins'] = pkg; "
            "from lth_deps import build; from elf_ext.build import ElfBuild; "
            "print(build(ElfBuild(), sys.argv[2], install=False, stream=sys.stderr).wheel)")
    p = subprocess.run([py312, "-c", code, str(ROOT), source], stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise FolderError(f"building elf-rl with Python {PY} failed (exit {p.returncode}); see the lines above")
    wheel = Path(p.stdout.strip().splitlines()[-1])
    shutil.copy2(wheel, folder / wheel.name)
    return folder / wheel.name


def own_wheel(folder: Path) -> None:
    """This package as a wheel, built in a temporary copy (the work tree gets no build folders)."""
    with tempfile.TemporaryDirectory(prefix="lth-wheel-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                                                 "__pycache__", "runs", "lth_output", ".*wheels*"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                        "--no-build-isolation", "-w", str(folder), str(src)], check=True)


def libtbb(folder: Path) -> None:
    """The system's libtbb.so.12 (Debian's libtbb12), copied as a real file."""
    p = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True)
    found = [line.split("=>")[-1].strip() for line in p.stdout.splitlines()
             if line.strip().startswith(LIBTBB + " ") and "x86-64" in line]
    if not found:
        raise FolderError(f"{LIBTBB} is not installed here (Debian: apt-get install libtbb12)")
    shutil.copyfile(os.path.realpath(found[0]), folder / LIBTBB)


def prepare(folder: Path, elf_src: str) -> None:
    py312 = python312()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    log(f"this package; elf-rl with {py312} from {elf_src}")
    own_wheel(folder)
    build_elf(py312, elf_src, folder)
    libtbb(folder)
    have = {}
    for w in folder.glob("*.whl"):
        have[wheel_meta(w)[0]] = w
    queue = list(ROOTS)
    for w in list(have.values()):
        name, _, reqs = wheel_meta(w)
        queue += [str(r) for r in needs(name, reqs)]
    while queue:
        req = Requirement(queue.pop(0))
        name = canonicalize_name(req.name)
        if name in have or name in DEVICE_HAS:
            continue
        spec = pinned(req)
        log(f"download {spec}")
        before = set(folder.glob("*.whl"))
        download(py312, spec, folder)
        (w,) = set(folder.glob("*.whl")) - before
        have[name] = w
        queue += [str(r) for r in needs(name, wheel_meta(w)[2])]
    check(folder)


def check(folder: Path) -> None:
    """Stop naming the problem unless `folder` holds one wheel per distribution, every requirement of each met by
    another or by the device's image, and libtbb.so.12 as a real file, all under MAX_MIB."""
    if not folder.is_dir():
        raise FolderError(f"{folder}: no such folder (make it with benchmarks/gpu_checks.sh --prepare {folder})")
    wheels = sorted(folder.glob("*.whl"))
    versions, problems = {}, []
    for w in wheels:
        name, ver, _ = wheel_meta(w)
        if name in versions:
            problems.append(f"two versions of {name}: {versions[name]} and {ver}")
        versions[name] = ver
        tags = parse_wheel_filename(w.name)[3]
        if not any(t.interpreter in ("py3", "cp312") and (t.platform == "any" or t.platform.endswith("x86_64"))
                   for t in tags):
            problems.append(f"{w.name} is no cp312 x86_64 wheel")
    for w in wheels:
        name, _, reqs = wheel_meta(w)
        for r in needs(name, reqs):
            n = canonicalize_name(r.name)
            if n in versions:
                if r.specifier and not r.specifier.contains(versions[n], prereleases=True):
                    problems.append(f"{name} needs {r}, the folder has {n} {versions[n]}")
            elif n not in DEVICE_HAS:
                problems.append(f"{name} needs {r}: neither in the folder nor on the device")
    for root in ["lth-plugins", "fairseq-fixed", "elf-rl", *ROOTS]:
        if canonicalize_name(root) not in versions:
            problems.append(f"no {root} wheel")
    tbb = folder / LIBTBB
    if not tbb.is_file() or tbb.is_symlink():
        problems.append(f"no {LIBTBB} (a real file, not a link)")
    mib = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    if mib > MAX_MIB:
        problems.append(f"{mib:.1f} MiB, over {MAX_MIB} MiB")
    if problems:
        raise FolderError(f"wheel folder {folder}: " + "; ".join(problems))
    print(f"{folder}: {len(wheels)} wheels and {LIBTBB}, {mib:.1f} MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["prepare", "check"])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--elf-src", default=os.environ.get("ELF_SRC") or str(ROOT.parent / "shared" / "third_party"
                                                                          / "ELF-1f79017.tar.gz"),
                    help="ELF's tarball or checkout (default: $ELF_SRC, else ../shared/third_party's)")
    a = ap.parse_args()
    if a.what == "prepare":
        if not Path(a.elf_src).exists():
            raise FolderError(f"ELF source {a.elf_src} does not exist (give --elf-src or ELF_SRC)")
        prepare(a.folder.resolve(), a.elf_src)
    else:
        check(a.folder.resolve())


if __name__ == "__main__":
    main()
