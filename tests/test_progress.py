"""What the CLI shows while it runs: progress lines with the time left, no placeholders."""

import io

import pytest

from cycle_vmss.events import Event
from cycle_vmss.progress import TerminalProgress, eta_seconds, eta_text, heartbeat_line


@pytest.mark.parametrize("first_start, done, remaining, now, left", [
    (None, 5, 10, 100.0, None),  # nothing started yet
    (0.0, 2, 10, 100.0, None),  # too few done to say
    (0.0, 4, 0, 100.0, None),  # nothing left
    (0.0, 4, 8, 100.0, 200.0),  # 4 in 100 s: 8 more take 200 s
    (50.0, 10, 5, 150.0, 50.0),
])
def test_the_time_left_is_the_pace_so_far(first_start, done, remaining, now, left):
    assert eta_seconds(first_start, done, remaining, now) == left


@pytest.mark.parametrize("seconds, text", [(None, ""), (42.4, "about 42 s left"),
                                           (89, "about 89 s left"), (600, "about 10 min left")])
def test_the_time_left_in_words(seconds, text):
    assert eta_text(seconds) == text


def test_a_heartbeat_before_the_plan_shows_no_placeholder():
    assert heartbeat_line({"done": 0, "in_flight": 0, "pending": 0, "ready": 5}) == \
        "progress: 0 done, 0 in flight, 0 pending; 5 ready"


def test_the_log_says_the_time_left_once_a_few_instances_are_done():
    out = io.StringIO()
    progress = TerminalProgress(out, live=False)
    progress.event(Event("plan", 0.0, data={"order": [str(i) for i in range(8)], "rMin": 6}))
    for i in range(8):
        progress.event(Event("started", 10.0 * i, str(i)))
        if i < 4:
            progress.event(Event("done", 10.0 * i + 10, str(i)))
    progress.event(Event("heartbeat", 40.0, data={"done": 4, "in_flight": 4, "pending": 0,
                                                  "ready": 6, "r_min": 6}))
    # 4 done in 40 s since the first start: the 4 still in flight take about 40 s more.
    assert out.getvalue().splitlines()[-1].endswith(
        "progress: 4 done, 4 in flight, 0 pending; 6 ready (R_min 6); about 40 s left")


def test_a_refusal_is_not_repeated_in_the_summary_and_unknowns_are_left_out():
    from cycle_vmss.progress import print_summary
    from cycle_vmss.report import Report

    out = io.StringIO()
    report = Report.refused("scale set ss in resource group rg was not found", resource_group="rg",
                            scale_set="ss")
    print_summary(report, out)
    text = out.getvalue()
    assert "was not found" not in text  # the one line on stderr says it
    assert text.splitlines()[0] == "REFUSED  nothing was changed (the error is below)"
    assert "None" not in text and "capacity" not in text
    assert "scale set ss in rg, 0s" in text
