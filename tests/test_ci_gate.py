"""The CI gate (tests/ci_gate.py, hooks of tests/conftest.py): with LTH_REQUIRE_FRAMEWORK_TESTS=flare, a skipped FLARE test fails pytest."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _pytest(root, required):
    env = dict(os.environ, LTH_REQUIRE_FRAMEWORK_TESTS=required)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(root),
                           "tests"], capture_output=True, text=True, cwd=root, env=env, timeout=300)


def test_a_skipped_framework_test_fails_only_where_it_is_required(tmp_path):
    (tmp_path / "tests" / "flare").mkdir(parents=True)
    (tmp_path / "tests" / "elf").mkdir()
    shutil.copy(HERE / "ci_gate.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / "tests" / "flare" / "test_a.py").write_text(
        "import pytest\ndef test_ok():\n    pass\n"
        "def test_skips():\n    pytest.skip('flare-rl is not installed')\n")
    (tmp_path / "tests" / "elf" / "test_b.py").write_text(
        "import pytest\npytest.skip('no elf here', allow_module_level=True)\n")
    (tmp_path / "tests" / "test_core.py").write_text(
        "import pytest\ndef test_skip():\n    pytest.skip('core skips are not checked')\n")

    assert _pytest(tmp_path, "").returncode == 0
    p = _pytest(tmp_path, "flare")
    assert p.returncode == 1, p.stdout
    assert "SKIPPED (counts as a failure) tests/flare/test_a.py::test_skips: Skipped: flare-rl is not installed" \
        in p.stdout and "elf/test_b" not in p.stdout.split("must run")[1]
    p = _pytest(tmp_path, "flare,elf")
    assert p.returncode == 1 and "SKIPPED (counts as a failure) tests/elf/test_b.py" in p.stdout
