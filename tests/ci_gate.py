""".ci/run names the frameworks whose upstream sources it built (LTH_REQUIRE_FRAMEWORK_TESTS=flare,elf): a
skipped test under tests/<framework>/ then fails the run, since those tests must run on the real framework there.
Its hooks are imported by tests/conftest.py."""
import os

import pytest

REQUIRED = {f.strip() for f in os.environ.get("LTH_REQUIRE_FRAMEWORK_TESTS", "").split(",") if f.strip()}
_required_skips = []


def _note_skip(report):
    parts = report.nodeid.split("/")
    if report.skipped and not hasattr(report, "wasxfail") and len(parts) > 2 and parts[0] == "tests" \
            and parts[1] in REQUIRED:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _required_skips.append(f"{report.nodeid}: {reason}")


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
