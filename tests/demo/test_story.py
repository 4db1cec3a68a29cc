"""The README's demo command, run as a user runs it: five outcomes as told, and a report with charts."""

from __future__ import annotations

import re

from demo.__main__ import main


def test_the_demo_ends_as_told_and_the_report_holds_the_charts(tmp_path, capsys):
    report_path = tmp_path / "report.html"
    assert main(["--plain", "--report", str(report_path)]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"│ ([2-6])\s+│.*?│ (Succeeded|RolledBack)\s+│ \d+\s+│ (yes|NO)\s+│", out)
    assert rows == [
        ("2", "Succeeded", "yes"),
        ("3", "RolledBack", "yes"),
        ("4", "RolledBack", "yes"),
        ("5", "RolledBack", "yes"),
        ("6", "RolledBack", "yes"),
    ], out[-3000:]
    assert "0 users saw green" in out  # the slow model was stopped in the shadow
    assert "rolled back at canary 10%" in out  # live-only errors: caught at the first live step
    assert "alert:green-5xx-and-424" in out  # the alert rolled back within the webhook request
    # fast and error-free, but 15% of its labels differ from blue's: stopped in the shadow (issue 14)
    assert "rolled back in the shadow for its predictions" in out  # and 0 users saw green (checked by the story)
    # every tick's work went timer -> Azurite's queue service -> the registered queue worker (issue 15)
    delivered = re.search(r"work items through Azurite's queue service to the queue worker: (\d+)$", out, re.M)
    assert delivered is not None, out[-2000:]
    assert int(delivered.group(1)) >= 100  # about one a simulated minute while a rollout is active
    report = report_path.read_text()
    # one section per rollout, each with its three charts (traffic, latency, errors) and decision markers
    assert report.count("<section") == 5
    assert report.count("<svg") >= 15  # and the score histograms of the prediction comparisons
    assert len(re.findall(r"<polyline", report)) >= 16
    assert "mirror 20% failed: latency" in report
    assert "disagreements in bold (Fail)" in report  # version 6's confusion matrix
    assert "Score distributions on the same inputs" in report
    assert "green disagrees with blue on" in report  # the evidence, in words
    assert "<script" not in report  # self-contained: nothing to run or fetch
