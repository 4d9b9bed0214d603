"""`cycle-vmss` as a subprocess against the simulator over HTTPS, through azure-identity and the
real SDK: what a user sees (exit code, stdout, stderr, report file) and what Azure saw."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import (
    REPO,
    WRITE_METHODS,
    arm_requests,
    assert_no_forbidden_calls,
    clean_env,
    cli_args,
    instance_id,
    interrupt,
    reimage_posts,
    run_cli,
)

pytestmark = pytest.mark.slow

NEVER_HEALTHY = {"instances": [{"id": "0", "zone": "1", "on_reimage": "never-healthy"},
                               {"id": "1", "zone": "2"}]}


@pytest.fixture(scope="module")
def never_healthy_run(tmp_path_factory):
    """The per-instance timeout cannot be shorter than one real minute, so this run starts
    before the other tests of the module and is checked after them (see the last test)."""
    from cycle_vmss.simulator.server import running_simulator

    from .conftest import TIMINGS

    report = tmp_path_factory.mktemp("timeout") / "report.json"
    with running_simulator({"timings": TIMINGS, **NEVER_HEALTHY}) as sim:
        started = time.monotonic()
        proc = subprocess.Popen(cli_args(sim, "--timeout-minutes", "1", "--report-file", str(report)),
                                cwd=REPO, env=clean_env(sim), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            yield sim, proc, report, started
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def test_a_never_healthy_run_is_under_way(never_healthy_run):
    _, proc, _, _ = never_healthy_run
    assert proc.poll() is None  # it is waiting out its one-minute timeout meanwhile


# Protected from the rollout: a protection policy on a Uniform instance (skipped at preflight),
# a resource lock on a Flexible one (its reimage answers 409 ScopeLocked: skipped then).
GUARDED = {"Uniform": ({"protect_from_scale_set_actions": True}, "protected from scale-set actions"),
           "Flexible": ({"locked": True}, "locked")}


def test_success_reimages_every_instance_within_the_budget(simulate, tmp_path, mode):
    guard, reason = GUARDED[mode]
    sim = simulate({"orchestration_mode": mode,
                    "instances": [{"id": "0"}, {"id": "1"}, {"id": "2"}, {"id": "3", **guard}]})
    ids = [instance_id(sim, i) for i in "0123"]
    report_file = tmp_path / "run.json"

    done = run_cli(sim, "--report-file", str(report_file))

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    report = json.loads(report_file.read_text())
    assert (report["result"], report["orchestrationMode"]) == ("succeeded", mode)
    assert [(i["id"], i["action"], i["reason"]) for i in report["instances"]] == [
        (ids[0], "reimaged", None), (ids[1], "reimaged", None), (ids[2], "reimaged", None),
        (ids[3], "skipped", reason)]
    assert all(i["reimageStart"] and i["readyTime"] for i in report["instances"][:3])
    assert (report["scaleSet"], report["resourceGroup"]) == ("vmss-demo", "rg-demo")
    assert report["subscriptionId"] == sim.info["subscription_id"]
    # The counts are the HTTP requests the simulator saw, retries and operation polls included
    # (on Flexible, the locked VM's refused reimage too).
    seen = arm_requests(sim)
    assert report["requests"]["reads"] == sum(1 for r in seen if r["method"] == "GET")
    assert report["requests"]["writes"] == sum(1 for r in seen if r["method"] in WRITE_METHODS) \
        == 3 + (mode == "Flexible")
    # What the user reads: the outcome, every instance with its times, where the report is.
    assert "SUCCEEDED" in done.stdout and "reimaged 3 instances" in done.stdout
    assert f"skipped {ids[3]} ({reason})" in done.stdout
    for row in report["instances"][:3]:
        assert row["name"] in done.stdout
        assert row["reimageStart"][11:19] in done.stdout
    assert f"report: {report_file}" in done.stdout
    # one timestamped line per event in a log
    assert f"instance {ids[0]}: reimage started" in done.stdout
    assert sorted(reimage_posts(sim)) == ids[:3]
    assert sim.history()["max_not_ready"] == 1
    assert_no_forbidden_calls(sim)


def test_dry_run_prints_the_plan_and_writes_nothing(simulate):
    sim = simulate({"instances": [{"id": "0", "zone": "1"}, {"id": "1", "zone": "2"},
                                  {"id": "2", "zone": "1"}, {"id": "3", "zone": "2", "power": "deallocated"}]})
    # Settings through CYCLE_VMSS_* variables; a flag wins over its variable.
    env = clean_env(sim, CYCLE_VMSS_DRY_RUN="true", CYCLE_VMSS_SCALE_SET_NAME="not-this-one",
                    CYCLE_VMSS_MAX_UNAVAILABLE="2")

    done = run_cli(sim, env=env)

    assert done.returncode == 0, done.stderr
    assert "plan: N0=3 max-unavailable=2" in done.stdout
    assert "order: 0, 1, 2" in done.stdout
    assert "deallocated" in done.stdout  # the skip is shown
    assert "DRY-RUN" in done.stdout and "nothing was changed" in done.stdout
    logged = sim.get_json("/_simulator/requests")
    logged = logged.get("requests", logged) if isinstance(logged, dict) else logged
    assert [r for r in logged if r["method"] in WRITE_METHODS and r["path"].startswith("/subscriptions/")] == []
    assert any(r["path"].endswith("/vmss-demo") for r in logged)  # the flag's name, not the variable's


def test_one_instance_set_surges_to_two_and_back(simulate, tmp_path, mode):
    sim = simulate({"instances": 1, "orchestration_mode": mode})
    report_file = tmp_path / "run.json"

    done = run_cli(sim, "--report-file", str(report_file))

    assert done.returncode == 0, done.stderr
    report = json.loads(report_file.read_text())
    assert report["capacity"] == {"before": 1, "during": 2, "after": 1}
    assert report["plan"]["surgeTo"] == 2
    # the fresh surge instance is not reimaged, and the scale set's batch delete removes it
    assert reimage_posts(sim) == [instance_id(sim, "0")]
    assert sim.history()["instances"][instance_id(sim, "1")]["deleted"] is not None
    writes = [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in arm_requests(sim)
              if r["method"] in WRITE_METHODS]
    assert writes == [("PATCH", "vmss-demo"), ("POST", "reimage"), ("POST", "delete")]
    assert "capacity 1 -> 2" in done.stdout and "capacity 2 -> 1" in done.stdout
    assert sim.backend.get_scale_set("rg-demo", "vmss-demo").capacity == 1
    history = sim.history()
    assert history["max_not_ready"] <= 1
    assert_no_forbidden_calls(sim)


def test_failed_reimage_names_the_instance_and_code(simulate, tmp_path, mode):
    sim = simulate({"orchestration_mode": mode,
                    "instances": [{"id": "0", "zone": "1"},
                                  {"id": "1", "zone": "2", "on_reimage": "fail",
                                   "error_code": "OSProvisioningTimedOut"},
                                  {"id": "2", "zone": "3"}]})
    failing = instance_id(sim, "1")
    report_file = tmp_path / "run.json"

    done = run_cli(sim, "--report-file", str(report_file))

    assert done.returncode == 1
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("cycle-vmss: error: ")
    assert f"instance {failing}" in error[0] and "OSProvisioningTimedOut" in error[0]
    report = json.loads(report_file.read_text())
    assert report["result"] == "failed"
    assert report["failure"]["instanceId"] == failing
    assert report["failure"]["code"] == "OSProvisioningTimedOut"
    actions = {i["id"]: i["action"] for i in report["instances"]}
    assert actions[failing] == "failed"
    assert "not-started" in actions.values()  # nothing new starts after a failure
    assert "FAILED" in done.stdout and "OSProvisioningTimedOut" in done.stdout
    assert_no_forbidden_calls(sim)


def test_max_failed_two_reimages_the_other_eight_and_exits_1_naming_both(simulate, tmp_path):
    sim = simulate({"instances": [{"id": str(i), **({"on_reimage": "fail"} if i in (3, 7) else {})}
                                  for i in range(10)],
                    "timings": {"reimage_seconds": 1, "boot_seconds": 0, "health_seconds": 0}})
    report_file = tmp_path / "run.json"

    done = run_cli(sim, "--max-failed", "2", "--max-unavailable", "3",
                   "--poll-interval-seconds", "1", "--report-file", str(report_file))

    assert done.returncode == 1, done.stderr
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and "2 instances failed (max-failed 2 let the run go on): 3 (" in error[0]
    assert "7 (" in error[0] and error[0].endswith("; 8 reimaged")
    report = json.loads(report_file.read_text())
    actions = {i["id"]: i["action"] for i in report["instances"]}
    assert sorted(i for i, a in actions.items() if a == "failed") == ["3", "7"]
    assert list(actions.values()).count("reimaged") == 8
    assert sorted(reimage_posts(sim)) == sorted(map(str, range(10)))  # each asked once


def test_a_gate_that_answers_503_twice_holds_the_first_start_and_is_logged_twice(simulate):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answered: list[tuple[float, int]] = []

    class Gate(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            status = 503 if len(answered) < 2 else 200
            answered.append((time.time(), status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    gate = ThreadingHTTPServer(("127.0.0.1", 0), Gate)
    threading.Thread(target=gate.serve_forever, daemon=True).start()
    sim = simulate({"instances": 2, "timings": {"reimage_seconds": 1, "boot_seconds": 0, "health_seconds": 0}})
    try:
        done = run_cli(sim, "--gate-url", f"http://127.0.0.1:{gate.server_port}/ready?key=s3cret",
                       "--poll-interval-seconds", "1")
    finally:
        gate.shutdown()

    assert done.returncode == 0, done.stderr
    gate_lines = [line for line in done.stdout.splitlines() if " gate: " in line]
    assert len(gate_lines) == 2, done.stdout  # when the answer changes, not every poll
    assert "answered HTTP 503 Service Unavailable: no new reimage starts" in gate_lines[0]
    assert "answered 2xx: reimages may start" in gate_lines[1]
    assert len([line for line in done.stdout.splitlines() if "blocked by gate-url" in line]) == 1
    opened = answered[2][0]
    first_post = min(r["time"] for r in arm_requests(sim) if r["method"] == "POST")
    assert first_post >= opened - 0.5  # the simulator's clock and this one: the same machine's
    assert "s3cret" not in done.stdout + done.stderr


def test_commands_run_in_order_around_each_reimage_and_a_failing_one_fails_its_instance(
        simulate, tmp_path):
    sim = simulate({"instances": 3, "timings": {"reimage_seconds": 1, "boot_seconds": 0, "health_seconds": 0}})
    log = tmp_path / "order.log"
    stamp = f"{sys.executable} -c 'import os, time; print(os.environ[\"CYCLE_VMSS_HOOK_INSTANCE_ID\"], time.time())'"
    pre = (f"echo draining $CYCLE_VMSS_HOOK_INSTANCE_NAME in $CYCLE_VMSS_HOOK_SCALE_SET; "
           f"[ $CYCLE_VMSS_HOOK_INSTANCE_ID != 2 ] || {{ echo cannot drain 2; exit 3; }}; "
           f"{stamp} | sed 's/^/pre /' >> {log}")
    post = f"echo smoke test; {stamp} | sed 's/^/post /' >> {log}"
    report_file = tmp_path / "run.json"

    done = run_cli(sim, "--pre-reimage-command", pre, "--post-ready-command", post,
                   "--max-failed", "1", "--max-unavailable", "2", "--poll-interval-seconds", "1",
                   "--report-file", str(report_file))

    assert done.returncode == 1, done.stderr  # one failed instance: the run still fails
    assert "instance 0: pre-reimage-command: draining vmss-demo_0 in vmss-demo" in done.stdout
    assert "instance 1: post-ready-command: smoke test" in done.stdout
    rows = {r["id"]: r for r in json.loads(report_file.read_text())["instances"]}
    assert rows["2"]["action"] == "failed"
    assert rows["2"]["error"]["code"] == "PreReimageCommandFailed"
    assert rows["2"]["error"]["message"].endswith("exited 3; last lines: draining vmss-demo_2 in "
                                                  "vmss-demo | cannot drain 2")
    assert sorted(reimage_posts(sim)) == ["0", "1"]  # 2 was never asked to reimage
    times = {}
    for line in log.read_text().splitlines():
        which, iid, at = line.split()
        times[(which, iid)] = float(at)
    history = sim.history()
    for iid in ("0", "1"):
        (reimage,) = history["instances"][iid]["reimages"]
        ready = max(end for _, end in history["instances"][iid]["not_ready"] if end is not None)
        # pre-command, reimage request, ready, post-command: on this machine's one clock
        assert times[("pre", iid)] <= reimage["start"] <= ready <= times[("post", iid)]


def test_a_failing_post_ready_command_fails_its_instance_after_its_reimage(simulate, tmp_path):
    sim = simulate({"instances": 2, "timings": {"reimage_seconds": 1, "boot_seconds": 0, "health_seconds": 0}})
    report_file = tmp_path / "run.json"

    done = run_cli(sim, "--post-ready-command", "echo smoke test failed >&2; exit 4",
                   "--poll-interval-seconds", "1", "--report-file", str(report_file))

    assert done.returncode == 1
    report = json.loads(report_file.read_text())
    assert report["failure"]["code"] == "PostReadyCommandFailed"
    assert report["message"].endswith("post-ready-command exited 4; last lines: smoke test failed")
    first = report["failure"]["instanceId"]
    assert reimage_posts(sim) == [first]  # reimaged, then failed by its command: nothing more starts


def test_a_cancel_during_a_pre_reimage_command_ends_it_and_the_run_within_3_seconds(simulate, tmp_path):
    sim = simulate({"instances": 2})
    pid_file = tmp_path / "pid"
    proc = subprocess.Popen(cli_args(sim, "--pre-reimage-command", f"echo $$ > {pid_file}; exec sleep 30"),
                            cwd=REPO, env=clean_env(sim), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        started = next((line for line in proc.stdout if "pre-reimage-command: started" in line), "")
        assert started, "the command never started"
        # The line comes as the shell is spawned: wait until it runs (it has written its pid),
        # or a loaded machine interrupts it before it could.
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid_file.read_text().strip(), "the command never ran"
        out, err, took = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()

    assert proc.returncode == 130 and took < 3, (took, err)
    assert reimage_posts(sim) == []  # the command had not ended: no reimage was asked
    status = Path(f"/proc/{pid_file.read_text().strip()}/status")
    assert not status.exists() or "State:\tZ" in status.read_text()  # ended with the run


def test_ignore_initial_health_reimages_the_unready_instance_first(simulate):
    scenario = {"instances": [{"id": "0", "zone": "1"}, {"id": "1", "zone": "2"},
                              {"id": "2", "zone": "3", "health": "unhealthy"}]}
    refused_sim = simulate(scenario)
    refused = run_cli(refused_sim)
    assert refused.returncode == 2
    assert "2 (" in refused.stderr and "ignore-initial-health" in refused.stderr
    assert reimage_posts(refused_sim) == []

    sim = simulate(scenario)
    done = run_cli(sim, "--ignore-initial-health")

    assert done.returncode == 0, done.stderr
    assert reimage_posts(sim)[0] == "2"
    assert sorted(reimage_posts(sim)) == ["0", "1", "2"]
    assert_no_forbidden_calls(sim)


def test_one_instance_of_300_prints_the_rest_in_one_line(simulate):
    sim = simulate({"instances": 300, "page_size": 1000})

    done = run_cli(sim, "--instance-ids", "7", timeout=120)

    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    line = "299 instances outside instance-ids left alone: 0, 1, 2, 3, 4, 5, 6, 8, 9, 10 and 289 more"
    # Once in the log as preflight finds them, once under the results table in their place.
    assert [l for l in out if line in l] == [l for l in out if l.endswith(" " + line)] + [line]
    assert out[-1] == line
    assert [l for l in out if "out of scope" in l] == []
    assert "reimaged 1 instance of scale set vmss-demo in" in done.stdout
    assert "; skipped 299 outside instance-ids" in done.stdout
    assert len(out) < 25 and reimage_posts(sim) == ["7"]


def test_no_waiting_line_comes_before_the_first_reimage(simulate):
    sim = simulate({"instances": 4})

    done = run_cli(sim, "--max-unavailable", "2")

    assert done.returncode == 0, done.stderr
    events = [l.split(" ", 1)[1] for l in done.stdout.splitlines() if l[:4].isdigit()]
    first_start = next(i for i, e in enumerate(events) if e.endswith("reimage started"))
    assert not any(e.startswith("waiting:") for e in events[:first_start])
    assert "waiting: in-flight cap: 2 of 2 reimages in flight" in events[first_start + 2]


def test_missing_health_extension_is_refused_with_the_health_source_hint(simulate):
    sim = simulate({"instances": 2, "health_extension": False})

    done = run_cli(sim)

    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and "ApplicationHealth" in line and "health-source" in line
    assert [r for r in arm_requests(sim) if r["method"] in WRITE_METHODS] == []


def test_a_subscription_that_is_not_there_is_named_as_the_subscription(simulate):
    sim = simulate({"instances": 1})
    wrong = "00000000-0000-4000-8000-00000000dead"

    done = run_cli(sim, "--subscription-id", wrong)

    assert done.returncode == 2
    assert done.stderr.startswith(f"cycle-vmss: error: subscription {wrong} was not found, or this "
                                  "identity has no role in it (Azure said: 404 SubscriptionNotFound")
    assert done.stderr.rstrip().endswith("check the subscription-id setting or AZURE_SUBSCRIPTION_ID, "
                                         "and the identity's role assignments")
    assert "scale set" not in done.stderr


def test_missing_scale_set_names_set_and_group(simulate):
    sim = simulate({"instances": 1})

    done = run_cli(sim, "-n", "vmss-gone")

    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and "vmss-gone" in line and "rg-demo" in line and "not found" in line
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("args, env, named", [
    (["--max-unavailable", "lots"], {}, "--max-unavailable: 'lots'"),
    (["--timeout-minutes", "0"], {}, "--timeout-minutes: '0'"),
    (["--max-unavailable", "0", "--max-surge", "0"], {}, "--max-unavailable and --max-surge"),
    (["--dry-run=yes"], {}, "--dry-run: 'yes'"),
    (["--health-source", "probe"], {}, "--health-source: 'probe'"),
    (["--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
    ([], {"CYCLE_VMSS_MAX_SURGE": "-1"}, "CYCLE_VMSS_MAX_SURGE: '-1'"),
    ([], {"AZURE_SUBSCRIPTION_ID": "not-a-guid"}, "AZURE_SUBSCRIPTION_ID: 'not-a-guid'"),
])
def test_bad_input_is_one_line_exit_2_and_no_request(simulate, args, env, named):
    sim = simulate({"instances": 1})

    done = run_cli(sim, *args, env=clean_env(sim, **env))

    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cycle-vmss: error: ") and named in lines[0], lines
    assert sim.requests() == []  # not even a token request


def test_missing_resource_group_is_one_line(simulate):
    done = run_cli(None, "-n", "vmss-demo", bare=True, env=clean_env())
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "cycle-vmss: error: --resource-group: (empty) is not accepted (it is required); expected "
        "a resource group name: 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'"]


def test_wrong_secret_is_refused_in_one_line_without_secrets(simulate):
    sim = simulate({"instances": 1})

    done = run_cli(sim, env=clean_env(sim, AZURE_CLIENT_SECRET="wrong-secret-value"))

    assert done.returncode == 2
    output = done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "AADSTS" in lines[0]
    assert "wrong-secret-value" not in output and sim.info["client_secret"] not in output
    assert "Traceback" not in output and "eyJ" not in output  # no trace, no token
    assert arm_requests(sim) == []


def test_identity_without_permission_is_refused_naming_the_action(simulate):
    sim = simulate({"instances": 1})

    done = run_cli(sim, env=clean_env(sim, AZURE_CLIENT_ID=sim.info["forbidden_client_id"]))

    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Microsoft.Compute/virtualMachineScaleSets/read" in lines[0]
    assert "eyJ" not in done.stdout + done.stderr


def test_sigint_mid_run_leaves_a_report_and_exits_130_within_3_seconds(simulate, tmp_path, mode):
    sim = simulate({"instances": 3, "orchestration_mode": mode,
                    "timings": {"reimage_seconds": 6, "boot_seconds": 1, "health_seconds": 1}})
    report_file = tmp_path / "run.json"
    proc = subprocess.Popen(cli_args(sim, "--report-file", str(report_file)), cwd=REPO,
                            env=clean_env(sim), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        for line in proc.stdout:  # wait until a reimage is in flight
            if "reimage started" in line:
                break
        time.sleep(0.5)
        out, err, elapsed = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()

    assert proc.returncode == 130, err
    assert elapsed < 3
    report = json.loads(report_file.read_text())
    assert report["result"] == "cancelled"
    actions = {i["id"]: i["action"] for i in report["instances"]}
    assert list(actions.values()).count("in-flight") == 1
    assert "CANCELLED" in out
    assert reimage_posts(sim) == [k for k, v in actions.items() if v == "in-flight"]


def test_demo_runs_a_rolling_reimage_with_no_settings(tmp_path):
    report_file = tmp_path / "demo.json"
    started = time.monotonic()

    done = subprocess.run([sys.executable, "-m", "cycle_vmss", "demo", "--report-file", str(report_file)],
                          cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 40
    report = json.loads(report_file.read_text())
    assert report["result"] == "succeeded"
    assert [i["action"] for i in report["instances"]] == ["reimaged"] * 6
    assert {i["zone"] for i in report["instances"]} == {"1", "2", "3"}
    assert "SUCCEEDED" in done.stdout and f"report: {report_file}" in done.stdout
    assert "at most 2 instance(s) not ready at once (budget: 2)" in done.stdout


def test_never_healthy_instance_times_out_naming_it(never_healthy_run):
    sim, proc, report_file, started = never_healthy_run
    out, err = proc.communicate(timeout=max(5.0, 90 - (time.monotonic() - started)))

    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "instance 0" in lines[0] and "not done within 60 s" in lines[0]
    assert "health unhealthy" in lines[0]  # its last states
    report = json.loads(report_file.read_text())
    assert report["result"] == "failed" and report["failure"]["instanceId"] == "0"
    actions = {i["id"]: i["action"] for i in report["instances"]}
    assert actions == {"0": "failed", "1": "not-started"}
    assert reimage_posts(sim) == ["0"]
    assert_no_forbidden_calls(sim)


def test_the_demo_report_draws_as_a_timeline(tmp_path):
    import xml.etree.ElementTree as ET

    report = tmp_path / "demo.json"
    demo = subprocess.run([sys.executable, "-m", "cycle_vmss", "demo", "--report-file", str(report)],
                          capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    drawn = subprocess.run([sys.executable, "-m", "cycle_vmss", "timeline", str(report), "-o",
                            str(tmp_path / "run.svg")], capture_output=True, text=True, timeout=60)
    assert (drawn.returncode, drawn.stdout) == (0, f"{tmp_path / 'run.svg'}\n"), drawn.stderr
    root = ET.parse(tmp_path / "run.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert sum(1 for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "reimaged") == 6 + 1
