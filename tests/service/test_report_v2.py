"""Report v2, read as a person reads it: the demo's five rollouts rendered, then checked for what a
reader notices first (a summary), charts whose axes end with the data and tick in 1-2-5 steps, the
policy's limits and the analysis windows drawn, numbered decisions with a legend, evidence in words."""

from __future__ import annotations

import itertools
import math
import re
from datetime import datetime

import pytest

from demo.__main__ import main
from shared.report_charts import format_tick, nice_ticks, time_ticks


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["--plain", "--report", str(path)]) == 0
    return path.read_text()


def sections(page: str) -> list[str]:
    return re.findall(r"<section>(.*?)</section>", page, re.S)


def without_raw(html: str) -> str:
    return re.sub(r"<details.*?</details>", "", html, flags=re.S)


def test_each_rollout_opens_with_a_summary_of_outcome_duration_exposure_and_evidence(page):
    found = sections(page)
    assert len(found) == 5
    for section in found:
        summary = re.search(r'<table class="summary[^"]*">(.*?)</table>', section, re.S)
        assert summary, "no summary"
        assert section.index("summary") < section.index("<svg")  # at the top, before the charts
        rows = dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", summary.group(1)))
        assert re.match(r"(Succeeded|RolledBack): \S", rows["Outcome"])
        assert re.search(r"took (\d+ h )?\d+ min", rows["Duration"])
        assert "Users exposed to green" in rows
        assert rows["Deciding evidence"]
    succeeded, mirror_fail, canary_fail = found[0], found[1], found[2]
    assert "Succeeded: bake at 100% passed" in succeeded
    assert re.search(r"about [\d,]+ requests served by green live", succeeded)
    assert "none: green never served users live" in mirror_fail  # rolled back while mirrored
    assert "latency: green P90" in mirror_fail
    assert "proven worse than the 1.10x left alone" in mirror_fail
    assert re.search(r"about [\d,]+ requests served by green live in the analysis windows \(canary 10%\)", canary_fail)


def _minutes(label: str) -> int:
    h, m = label.split(":")
    return int(h) * 60 + int(m)


def test_the_time_axis_ends_with_the_data_not_an_hour_later(page):
    succeeded = sections(page)[0]
    ticks = [_minutes(t) for t in re.findall(r'class="xtick"[^>]*>(\d\d:\d\d)<', succeeded)]
    # Old blue is deleted an hour after the success (keep_old_blue_for), which used to stretch the
    # axis an hour past the data; the deletion stays in the audit trail.
    deleted = re.search(r"(\d\d:\d\d)</td><td>[^<]*</td><td>[^<]*</td><td>fraud-model-v1 deleted", succeeded)
    done = re.search(r"(\d\d:\d\d)</td><td>Baking &rarr; Succeeded", succeeded)
    assert deleted, "old blue's deletion is in the audit trail"
    assert done, "the success is in the audit trail"
    assert _minutes(deleted.group(1)) - _minutes(done.group(1)) >= 60
    assert max(ticks) <= _minutes(done.group(1)) + 15


def _is_125(step: float) -> bool:
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 5, 10))


def test_value_axes_tick_in_1_2_5_steps_with_sensible_decimals(page):
    for section in sections(page):
        for svg in re.findall(r"<svg.*?</svg>", section, re.S):
            labels = re.findall(r'class="ytick"[^>]*>([^<]+)<', svg)
            values = [float(label.rstrip("%")) for label in labels]
            assert values[0] == 0
            assert len(values) >= 3
            steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
            assert len(steps) == 1, labels
            (step,) = steps
            assert _is_125(step), labels
            for label in labels:  # 0.632% or 85.2 no more: as many decimals as the step needs
                decimals = len(label.rstrip("%").partition(".")[2])
                assert decimals == max(0, -math.floor(math.log10(step) + 1e-9)), labels


def test_limits_and_analysis_windows_are_drawn(page):
    succeeded = sections(page)[0]
    svgs = [s for s in re.findall(r"<svg.*?</svg>", succeeded, re.S) if "score histograms" not in s]
    assert len(svgs) == 3
    traffic, latency, errors = svgs
    for svg in svgs:
        assert svg.count('class="window"') == 4  # mirror 20%, canary 10%, canary 50%, bake
    for name in ("mirror 20%", "canary 10%", "canary 50%", "bake"):
        assert 'class="wlabel"' in traffic
        assert f">{name}</text>" in traffic
    # blue's P90 +20% and blue's error rate +0.5 points in every stage (the bake against blue's
    # figures recorded before it)
    assert len(re.findall(r'<line class="limit"', latency)) == 4
    assert len(re.findall(r'<line class="limit"', errors)) == 4
    assert re.search(r">limit \d+ ms<", latency)
    assert re.search(r">limit \d+\.\d\d%<", errors)
    assert "limit: blue +20%" in succeeded
    assert "limit: blue +0.5 points" in succeeded


def test_every_decision_marker_is_numbered_and_listed_in_a_legend(page):
    for section in sections(page):
        numbers = re.findall(r'<g class="marker">.*?class="mlabel"[^>]*>(\d+)</text></g>', section, re.S)
        assert numbers
        legend = re.search(r'<ol class="legend">(.*?)</ol>', section, re.S)
        assert legend
        listed = re.findall(r'<b class="badge [^"]+">(\d+)</b> \d\d:\d\d', legend.group(1))
        # each chart repeats the markers; each number appears once in the legend, in order
        assert set(numbers) <= set(listed)
        assert listed == [str(i) for i in range(1, len(listed) + 1)]


def test_evidence_is_told_in_words_with_the_raw_values_kept_in_details(page):
    readable = without_raw(page)
    assert not re.search(r"\d(?:\.\d+)?e-\d", readable), re.findall(r".{60}\d(?:\.\d+)?e-\d.{20}", readable)[:3]
    assert re.search(
        r"errors: green \d+(\.\d+)?% vs blue \d\.\d\d% \([+-][\d.]+ points\), "
        r"bounds [+-][\d.]+ points \.\. [+-][\d.]+ points: proven within \+0\.5 points",
        readable,
    )
    assert re.search(
        r"errors: green \d\.\d% vs blue 0\.\d\d% \(\+[\d.]+ points\), bounds .{0,40}: proven worse than \+0\.25 points",
        readable,
    )
    raw = "".join(re.findall(r'<details class="raw">.*?</details>', page, re.S))
    assert "alpha=" in raw
    assert "lower=" in raw
    assert "upper=" in raw
    assert "<details open" not in page  # collapsed


@pytest.mark.parametrize(
    ("vmax", "top", "ticks"),
    [
        (159, 200, ["0", "50", "100", "150", "200"]),
        (0.632, 0.8, ["0.0", "0.2", "0.4", "0.6", "0.8"]),
        (85.2, 100, ["0", "20", "40", "60", "80", "100"]),
        (100, 100, ["0", "20", "40", "60", "80", "100"]),
        (6.88, 8, ["0", "2", "4", "6", "8"]),
        (0.07, 0.08, ["0.00", "0.02", "0.04", "0.06", "0.08"]),
    ],
)
def test_nice_ticks(vmax, top, ticks):
    got_top, got = nice_ticks(vmax)
    assert math.isclose(got_top, top)
    step = got[1] - got[0]
    assert [format_tick(v, step) for v in got] == ticks


def test_time_ticks_are_round_clock_times_within_the_span():
    t0, t1 = datetime(2026, 11, 2, 9, 0), datetime(2026, 11, 2, 10, 3)
    assert [f"{t:%H:%M}" for t in time_ticks(t0, t1)] == ["09:00", "09:10", "09:20", "09:30", "09:40", "09:50", "10:00"]


def test_open_bounds_are_said_in_words_and_holding_rows_fold_what_does_not_hold_them(page):
    readable = without_raw(page)
    assert "∞" not in readable
    assert "bounds 0x" not in readable
    assert re.search(r"lower bound \d\.\d\dx, no upper bound yet: not yet proven within", readable)
    # rows that only hold list the checks holding them; passing ones fold (collapsed, never open)
    assert re.search(r'<details class="more"><summary>\d+ (other )?checks?: \d+ passed', page)
    # the summary's deciding evidence reads one check per line
    succeeded = sections(page)[0]
    deciding = re.search(r"<th>Deciding evidence</th><td>(.*?)</td>", succeeded)
    assert deciding
    assert len(re.findall(r"<li>", deciding.group(1))) == 3  # errors, latency, slow tail
