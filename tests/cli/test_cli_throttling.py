"""Azure's long Retry-After (60 to 1200 s) through the CLI, the real SDK and HTTPS: the wait is the
engine's, so a cancel still ends the run within 3 s and timeout-minutes still fails it on time."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from .conftest import REPO, cli_args, clean_env, interrupt_on, reimage_posts


def test_sigint_while_azure_asks_for_1200_s_exits_130_within_3_seconds(simulate, tmp_path):
    sim = simulate({"instances": 3, "faults": {"throttle_reads_every": 7, "throttle_writes_every": 2,
                                               "retry_after_seconds": 1200}})
    report_file = tmp_path / "run.json"
    # Interrupted once the run waits out a Retry-After (here its reimage's status poll's).
    proc, throttled, out, err, elapsed = interrupt_on(sim, "Azure throttled", "--report-file",
                                                      str(report_file), settle=1)
    assert "(Retry-After 1200 s)" in throttled, "the run never said Azure throttled it"
    assert proc.returncode == 130, err
    assert elapsed < 3, f"took {elapsed:.1f} s"
    assert "Traceback" not in err
    report = json.loads(report_file.read_text())
    assert report["result"] == "cancelled"
    assert report["requests"]["throttled"] == sum(1 for r in sim.requests() if r["status"] == 429) >= 1
    assert "CANCELLED" in out
    posts = reimage_posts(sim)  # accepted reimages: none twice, and each one in the report
    assert len(posts) == len(set(posts))
    assert sorted(posts) == sorted(i["id"] for i in report["instances"]
                                   if i["action"] in ("in-flight", "reimaged"))


@pytest.mark.slow
def test_a_write_throttled_for_1200_s_fails_the_run_at_timeout_minutes(simulate):
    sim = simulate({"instances": 3, "faults": {"throttle_writes_every": 1, "retry_after_seconds": 1200}})
    started = time.monotonic()

    done = subprocess.run(cli_args(sim, "--timeout-minutes", "1"), cwd=REPO, env=clean_env(sim),
                          capture_output=True, text=True, timeout=120, check=False)

    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert 58 < elapsed < 80, f"took {elapsed:.0f} s"  # timeout-minutes 1, not 1200 s (or 3 x 1200)
    assert "instance 0: Azure refused the reimage request for 60 s (OperationNotAllowed" in done.stderr
    assert "waiting: instance 0: Azure throttled the reimage request (Retry-After 1200 s); no " \
           "reimage request for 60 s" in done.stdout
    posts = [r for r in sim.requests() if r["method"] == "POST" and "/oauth2/" not in r["path"]]
    assert [r["status"] for r in posts] == [429, 429]  # asked at once, and once more at the deadline
