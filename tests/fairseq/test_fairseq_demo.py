"""The main job's command, shortened: `lth demo` runs both tickets, prints the table and writes the report."""
import subprocess

from .helpers import BIN, env


def test_lth_demo_runs_both_tickets_and_writes_the_report(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([str(BIN / "lth"), "demo", "--out", str(out), "--rounds", "1", "--max-update", "60"],
                          env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("round"))
    assert lines[header + 1].split()[:2] == ["0", "0.0%"] and lines[header + 2].split()[:2] == ["1", "40.0%"]
    assert "round 1/1 finished" in proc.stderr  # the rounds' progress reaches the console
    for name in ("index.html", "report.csv", "figures/translation_tickets.png"):
        assert (out / "report" / name).is_file(), name
    csv = (out / "report" / "report.csv").read_text()
    assert "winning" in csv and "random" in csv
