"""The build infrastructure (`lth_deps`, `lth deps build`) on a small framework tree of its own: cache keys,
interrupted builds, folder vs tarball, source edits, system packages, bad input. The real FLARE build is tested in
tests/flare, ELF's in tests/elf."""
import base64
import hashlib
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from lth_deps import BuildError, BuildLog, SourceBuild, build, run_step
from lth_deps.cache import MARKER, cache_key, cached_wheel
from lth_deps.edits import Edit, apply_edits
from lth_deps.source import Source
from lth_plugins.cli import main as lth_main

HERE = Path(__file__).resolve().parent


def write_wheel(tree: Path, wheel_dir: Path, dist="toy_fw", version="1.0") -> Path:
    """A valid wheel of every file under tree/toyfw (what a pure-Python framework builder produces)."""
    files = {f"toyfw/{p.relative_to(tree / 'toyfw').as_posix()}": p.read_bytes()
             for p in sorted((tree / "toyfw").rglob("*")) if p.is_file()}
    info = f"{dist}-{version}.dist-info"
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},"
                     f"{len(d)}\n" for n, d in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    path = wheel_dir / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
    return path


class ToyBuild(SourceBuild):
    """A framework whose tree holds toyfw/__init__.py; the build edits the copy (as real builders do)."""

    name = "toy"
    dist_name = "toy-fw"
    expected_commit = "abc1234"

    def identify(self, tree):
        if not (Path(tree) / "toyfw" / "__init__.py").is_file():
            raise BuildError(f"{tree} is not a toy framework tree (no toyfw/__init__.py)")

    def build_wheel(self, tree, wheel_dir, log):
        init = tree / "toyfw" / "__init__.py"
        init.write_text(init.read_text().replace("OLD", "NEW"))  # a build-time edit of the copy
        log("packing")
        return write_wheel(tree, wheel_dir)


def make_tree(root: Path, value="1") -> Path:
    (root / "toyfw" / "sub").mkdir(parents=True)
    (root / "toyfw" / "__init__.py").write_text(f"VALUE = {value}\nNAME = 'OLD'\n")
    (root / "toyfw" / "sub" / "mod.py").write_text("X = 2\n")
    (root / "README").write_text("toy\n")
    return root


def make_tarball(tree: Path, out: Path, top="toy") -> Path:
    with tarfile.open(out, "w:gz") as tf:
        tf.add(tree, arcname=top)
    return out


def wheel_contents(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LTH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_key_follows_source_and_build_code(tmp_path):
    tree = make_tree(tmp_path / "a")
    b = ToyBuild()
    key = cache_key(b, Source(tree).content_hash())
    assert cache_key(b, Source(tree).content_hash()) == key
    (tree / "toyfw" / "sub" / "mod.py").write_text("X = 3\n")
    changed = cache_key(b, Source(tree).content_hash())
    assert changed != key
    (tree / "toyfw" / "sub" / "mod.py").write_text("X = 2\n")
    (tree / "toyfw" / "sub" / "mod.py").chmod(0o755)  # the executable bit is part of the tree
    assert cache_key(b, Source(tree).content_hash()) != key
    (tree / "toyfw" / "sub" / "mod.py").chmod(0o644)
    # .git, __pycache__ and *.pyc are not the source
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tree / "toyfw" / "__pycache__").mkdir()
    (tree / "toyfw" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert cache_key(b, Source(tree).content_hash()) == key

    code = tmp_path / "builder_code.py"
    code.write_text("# version 1\n")

    class Edited(ToyBuild):
        def build_files(self):
            return [code]

    k1 = cache_key(Edited(), Source(tree).content_hash())
    code.write_text("# version 2\n")
    assert cache_key(Edited(), Source(tree).content_hash()) != k1


def test_build_then_cache_hit_then_rebuild_on_change(tmp_path, cache, capsys):
    tree = make_tree(tmp_path / "src")
    first = build(ToyBuild(), tree, install=False)
    assert not first.cached and first.wheel.is_file() and first.wheel.parent.parent == cache / "wheels" / "toy"
    assert b"NAME = 'NEW'" in wheel_contents(first.wheel)["toyfw/__init__.py"]
    assert "OLD" in (tree / "toyfw" / "__init__.py").read_text(), "the upstream tree must not be edited"
    assert (first.wheel.parent / "build.json").is_file() and (first.wheel.parent / MARKER).is_file()
    log = cache / "wheels" / "toy" / f"{first.key}.log"
    assert "packing" in log.read_text() and "packing" in capsys.readouterr().err

    again = build(ToyBuild(), tree, install=False)
    assert again.cached and again.wheel == first.wheel and again.key == first.key

    (tree / "toyfw" / "__init__.py").write_text("VALUE = 2\nNAME = 'OLD'\n")
    changed = build(ToyBuild(), tree, install=False)
    assert not changed.cached and changed.key != first.key
    assert b"VALUE = 2" in wheel_contents(changed.wheel)["toyfw/__init__.py"]
    forced = build(ToyBuild(), tree, install=False, rebuild=True)
    assert not forced.cached and forced.key == changed.key


def test_checkout_folder_and_tarball_give_the_same_wheel(tmp_path):
    tree = make_tree(tmp_path / "toy")
    tarball = make_tarball(tree, tmp_path / "toy.tar.gz")
    (tree / "toyfw" / "__pycache__").mkdir()  # a used checkout
    (tree / "toyfw" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"junk")
    assert Source(tree).content_hash() == Source(tarball).content_hash()
    from_dir = build(ToyBuild(), tree, install=False, rebuild=True)
    from_tar = build(ToyBuild(), tarball, install=False, rebuild=True)
    assert from_dir.key == from_tar.key
    a, b = wheel_contents(from_dir.wheel), wheel_contents(from_tar.wheel)
    assert a == b and "toyfw/sub/mod.py" in a and not any("__pycache__" in n for n in a)


class FailingBuild(ToyBuild):
    def build_wheel(self, tree, wheel_dir, log):
        write_wheel(tree, wheel_dir)  # a wheel is written, then the build fails
        raise RuntimeError("compiler exploded")


def test_failed_build_leaves_no_trusted_entry_and_the_next_build_works(tmp_path, cache):
    tree = make_tree(tmp_path / "src")
    with pytest.raises(BuildError, match=r"building toy-fw failed: RuntimeError: compiler exploded; log: .*\.log"):
        build(FailingBuild(), tree, install=False)
    toy = cache / "wheels" / "toy"
    assert [p.name for p in toy.iterdir() if not p.name.endswith((".log", ".lock"))] == []
    result = build(ToyBuild(), tree, install=False)
    assert not result.cached and cached_wheel(result.wheel.parent) == result.wheel


def test_half_written_entry_is_detected_and_rebuilt(tmp_path, cache):
    tree = make_tree(tmp_path / "src")
    good = build(ToyBuild(), tree, install=False)
    (good.wheel.parent / MARKER).unlink()  # as if a copy of the cache lost its marker
    good.wheel.write_bytes(b"truncated")
    assert cached_wheel(good.wheel.parent) is None
    again = build(ToyBuild(), tree, install=False)
    assert not again.cached and zipfile.is_zipfile(again.wheel) and cached_wheel(again.wheel.parent) == again.wheel


SLOW_BUILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_builds import ToyBuild, write_wheel
    from lth_deps import build
    class Slow(ToyBuild):
        def build_wheel(self, tree, wheel_dir, log):
            w = write_wheel(tree, wheel_dir)
            print("WHEEL WRITTEN", flush=True)
            time.sleep(60)
            return w
    build(Slow(), {src!r}, install=False)
""")


def test_killed_build_is_not_trusted_and_the_same_command_continues(tmp_path, cache):
    tree = make_tree(tmp_path / "src")
    env = dict(os.environ, LTH_CACHE=str(cache))
    p = subprocess.Popen([sys.executable, "-c", SLOW_BUILD.format(tests=str(HERE), src=str(tree))], env=env,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "WHEEL WRITTEN"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    toy = cache / "wheels" / "toy"
    key = cache_key(ToyBuild(), Source(tree).content_hash())
    assert cached_wheel(toy / key) is None and any(toy.glob(f".tmp-{key}-*"))
    t0 = time.monotonic()
    result = build(ToyBuild(), tree, install=False)  # the lock died with the killed process
    assert time.monotonic() - t0 < 30 and not result.cached and result.key == key
    assert not any(toy.glob(".tmp-*")), "the killed build's temp folder is cleaned up"


def test_bad_sources_give_one_clear_error(tmp_path, capsys):
    with pytest.raises(BuildError, match="does not exist"):
        build(ToyBuild(), tmp_path / "nowhere", install=False)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BuildError, match="neither a folder nor a tar archive"):
        build(ToyBuild(), tmp_path / "notes.txt", install=False)
    other = tmp_path / "other"
    (other / "pkg").mkdir(parents=True)
    (other / "pkg" / "__init__.py").write_text("")
    with pytest.raises(BuildError, match="not a toy framework tree"):
        build(ToyBuild(), other, install=False)
    with pytest.raises(BuildError, match="not a toy framework tree"):
        build(ToyBuild(), make_tarball(other, tmp_path / "other.tar.gz"), install=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BuildError, match="not a toy framework tree"):
        build(ToyBuild(), tmp_path / "empty", install=False)
    assert not any((tmp_path / "cache").rglob("*.whl"))


def test_other_commit_warns_and_builds(tmp_path, capsys):
    tree = make_tree(tmp_path / "src")
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    subprocess.run(["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t", "add", "."], check=True)
    subprocess.run(["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
                   check=True)
    head = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    result = build(ToyBuild(), tree, install=False)
    assert result.commit == head.strip()
    assert f"the source is at commit {head[:12]}, not abc1234" in capsys.readouterr().err


def test_tarball_commit_comes_from_the_git_archive_header():
    tarball = Path("/work/shared/third_party/flare-33b71b4.tar.gz")
    if not tarball.exists():
        pytest.skip("needs ../shared/third_party")
    assert Source(tarball).commit(ToyBuild()).startswith("33b71b4")


def test_builder_writing_no_wheel_or_the_wrong_dist_is_an_error(tmp_path):
    class NoWheel(ToyBuild):
        def build_wheel(self, tree, wheel_dir, log):
            return None

    class WrongDist(ToyBuild):
        def build_wheel(self, tree, wheel_dir, log):
            return write_wheel(tree, wheel_dir, dist="other_fw")

    tree = make_tree(tmp_path / "src")
    with pytest.raises(BuildError, match="wrote 0 wheels"):
        build(NoWheel(), tree, install=False)
    with pytest.raises(BuildError, match="not a toy-fw wheel"):
        build(WrongDist(), tree, install=False)


def test_missing_system_packages_are_named_with_the_apt_get_line_never_installed(tmp_path, monkeypatch):
    class NeedsPkg(ToyBuild):
        apt_packages = ["lth-no-such-package-xyz"]

    calls = []
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: calls.append(cmd) or real_run(cmd, *a, **k))
    with pytest.raises(BuildError, match=r"needs system packages that are not installed: lth-no-such-package-xyz"
                                         r"\. Install them with:\n    sudo apt-get install -y --no-install-recommends "
                                         r"lth-no-such-package-xyz$"):
        build(NeedsPkg(), make_tree(tmp_path / "src"), install=False)  # as root too: Python never runs apt-get
    assert calls and not any("apt-get" in str(c[0]) for c in calls)


def test_setup_script_gets_the_apt_get_line_of_the_registered_builders():
    def system(*names):
        return subprocess.run([sys.executable, "-m", "lth_deps.system", *names], capture_output=True, text=True)

    flare = system("flare")  # FLARE needs no system package
    assert flare.returncode == 0 and flare.stdout == "" and flare.stderr == ""
    unknown = system("flare", "nosuch")
    assert unknown.returncode == 2 and "unknown build 'nosuch'; available:" in unknown.stderr


def test_edits_apply_to_a_private_copy_or_stop_naming_the_file_and_the_reason(tmp_path):
    tree = make_tree(tmp_path / "src")
    edits = [Edit("toyfw/__init__.py", "NAME = 'OLD'\n", "NAME = 'NEW'\n", "the toy's name changed"),
             Edit("toyfw/sub/mod.py", r"\bX\b", "Y", "X is a keyword here", count=1, regex=True)]
    lines = []
    apply_edits(tree, edits, "toy abc1234", lines.append)
    assert (tree / "toyfw" / "__init__.py").read_text() == "VALUE = 1\nNAME = 'NEW'\n"
    assert (tree / "toyfw" / "sub" / "mod.py").read_text() == "Y = 2\n"
    assert lines == ["applied 2 edits to 2 files"]
    lines.clear()
    apply_edits(tree, edits[:1], "toy abc1234", lines.append)  # a tree that already has the new text
    assert lines[0] == "toyfw/__init__.py: already fixed upstream (the toy's name changed)"
    with pytest.raises(BuildError, match=r"toy tree .*: toyfw/sub/mod.py: expected 2 occurrence\(s\) of 'Y' "
                                         r"\(two of them\), found 1; this builder knows toy abc1234"):
        apply_edits(tree, [Edit("toyfw/sub/mod.py", "Y", "Z", "two of them", count=2)], "toy abc1234")
    assert (tree / "toyfw" / "sub" / "mod.py").read_text() == "Y = 2\n"
    with pytest.raises(BuildError, match=r"toyfw/gone.py is missing \(needed for: gone\); is this toy abc1234\?"):
        apply_edits(tree, [Edit("toyfw/gone.py", "a", "b", "gone")], "toy abc1234")


def test_run_step_reports_the_failing_command_with_its_output(tmp_path):
    log = BuildLog("toy", path=tmp_path / "b.log")
    with pytest.raises(BuildError, match=r"(?s)make thing failed \(exit 3\); full log: .*b\.log.*boom"):
        run_step([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], log, what="make thing")
    log.close()
    assert "boom" in (tmp_path / "b.log").read_text()


def test_lth_deps_build_cli_errors(tmp_path, capsys):
    assert lth_main(["deps", "build", "nosuch", "--source", str(tmp_path)]) == 2
    assert "unknown build 'nosuch'; available:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        lth_main(["deps", "build", "flare"])  # --source is required
