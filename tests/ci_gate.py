""".ci/run names the frameworks that must be tested for real there (LTH_REQUIRE_FRAMEWORK_TESTS=flare,elf,slurm): a
skipped test of one of them then fails the run. A test belongs to a framework when it lies under
tests/<framework>/ or uses that framework's fixture (FIXTURES: `slurm_cluster`, `slurm_nodes` for the local SLURM).
Its hooks are imported by tests/conftest.py."""
import os

import pytest

REQUIRED = {f.strip() for f in os.environ.get("LTH_REQUIRE_FRAMEWORK_TESTS", "").split(",") if f.strip()}
FIXTURES = {"slurm_cluster": "slurm", "slurm_nodes": "slurm"}
_required_skips = []
_fixture_frameworks = {}  # nodeid -> frameworks whose fixtures the test uses


def _note_skip(report):
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    parts = report.nodeid.split("/")
    by_path = len(parts) > 2 and parts[0] == "tests" and parts[1] in REQUIRED
    if by_path or _fixture_frameworks.get(report.nodeid, set()) & REQUIRED:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _required_skips.append(f"{report.nodeid}: {reason}")


def pytest_itemcollected(item):
    names = {FIXTURES[f] for f in getattr(item, "fixturenames", ()) if f in FIXTURES}
    if names:
        _fixture_frameworks[item.nodeid] = names


def pytest_runtest_logreport(report):
    _note_skip(report)


def pytest_collectreport(report):
    _note_skip(report)


def pytest_sessionfinish(session, exitstatus):
    if _required_skips and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _required_skips:
        terminalreporter.section(f"tests of {', '.join(sorted(REQUIRED))} skipped where they must run", red=True)
        for line in _required_skips:
            terminalreporter.line(f"SKIPPED (counts as a failure) {line}", red=True)
