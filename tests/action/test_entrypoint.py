"""`entrypoint.py` run as the runner runs a container action, against the simulator over HTTPS,
through the real azure-identity / azure-mgmt-compute code. Each test asserts what a user of the
action sees: exit code, parsed outputs, annotations, log groups and the step summary."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import pytest

from .conftest import QUICK, action_env, collect, instance_id, sim_inputs, start_action

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def assert_nothing_leaks(run, *secrets: str) -> None:
    """Secrets and tokens appear only in `::add-mask::` lines (which the runner consumes)."""
    shown = "\n".join(l for l in run.lines if not l.startswith("::add-mask::"))
    shown += run.stderr + run.summary + json.dumps(run.outputs)
    report = run.workspace / "cycle-vmss-report.json"
    shown += report.read_text() if report.exists() else ""
    for secret in secrets:
        assert secret not in shown
    assert not JWT.search(shown), "a token was printed"


def github_token_requests(sim) -> int:
    return sum(1 for r in sim.requests() if r["path"].startswith("/_github/oidc/token"))


def test_oidc_rollout_succeeds_with_outputs_groups_and_summary(simulator, run_action, mode):
    sim = simulator({"instances": 3, "timings": QUICK, "orchestration_mode": mode})
    ids = [instance_id(sim, i) for i in "012"]
    run = run_action(sim_inputs(sim, **{"max-unavailable": "2", "max-surge": "1"}), sim=sim)
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["result"] == "succeeded"
    assert sorted(json.loads(run.outputs["reimaged-instances"])) == ids
    assert json.loads(run.outputs["failed-instances"]) == [] == json.loads(run.outputs["skipped-instances"])
    assert 0 <= int(run.outputs["duration-seconds"]) < 60
    assert run.outputs["report-file"] == "cycle-vmss-report.json"
    report = json.loads((run.workspace / "cycle-vmss-report.json").read_text())
    assert report["result"] == "succeeded" and len(report["instances"]) == 3
    assert report["orchestrationMode"] == mode
    # The surge instance came and went: capacity back where it was, the new one deleted.
    assert report["capacity"] == {"before": 3, "during": 4, "after": 3}
    assert sim.history()["instances"][instance_id(sim, "3")]["deleted"] is not None
    # Signed in through GitHub OIDC, and the whole set stayed within the budget (2 of the
    # set's own instances, plus the surge instance while it was created).
    assert github_token_requests(sim) >= 1
    assert sim.history()["max_not_ready"] <= 3
    assert "::group::Preflight (read only)" in run.lines and "::group::Results" in run.lines
    assert run.lines.count("::group::Results") == 1
    assert not run.commands("error") and not run.commands("warning")
    assert "## ✅ cycle-vmss succeeded: `vmss-demo`" in run.summary
    for i in ids:  # Uniform: `| 0 `vmss-demo_0` |`; Flexible: the VM name is the id, shown once
        name = "" if mode == "Flexible" else f" `vmss-demo_{i}`"
        assert re.search(rf"^\| {i}{name} \| \d \| reimaged \| \d\d:\d\d:\d\d \|",
                         run.summary, re.M), run.summary
        assert re.search(rf"^    {i}{name.replace('`', '')} : done, ", run.summary, re.M), run.summary
    assert "```mermaid\ngantt\n" in run.summary
    assert "| `max-unavailable` | 2 |" in run.summary
    assert re.search(r"\| ARM requests \| \d+ reads, \d+ writes, 0 throttled \|", run.summary)
    assert_nothing_leaks(run, sim.info["github_oidc_token"])


# Protected from the rollout: a protection policy (Uniform) or a resource lock on the VM
# (Flexible: its reimage answers 409 ScopeLocked, and it is skipped, not failed).
GUARDED = {"Uniform": ({"protect_from_scale_set_actions": True}, "protected from scale-set actions"),
           "Flexible": ({"locked": True}, "locked")}


def test_client_secret_run_masks_the_secret_and_warns_about_skips(simulator, run_action, mode):
    guard, reason = GUARDED[mode]
    sim = simulator({"instances": [{"id": "0"}, {"id": "1"}, {"id": "2", "power": "deallocated"},
                                   {"id": "3", **guard}],
                     "timings": QUICK, "orchestration_mode": mode})
    ids = [instance_id(sim, i) for i in "0123"]
    inputs = sim_inputs(sim, **{"client-secret": sim.info["client_secret"], "max-unavailable": "1"})
    run = run_action(inputs, sim=sim, oidc=False)
    assert run.code == 0, run.stdout + run.stderr
    secret = sim.info["client_secret"]
    assert f"::add-mask::{secret}" in run.lines
    assert run.lines.index(f"::add-mask::{secret}") == 0  # before anything else is printed
    assert sorted(json.loads(run.outputs["skipped-instances"])) == ids[2:]
    assert json.loads(run.outputs["reimaged-instances"]) == ids[:2]
    warnings = run.commands("warning")
    assert len(warnings) == 2
    assert f"Instance {ids[2]}" in warnings[0] and "deallocated" in warnings[0]
    assert f"Instance {ids[3]}" in warnings[1] and f"skipped: {reason}" in warnings[1]
    assert not run.commands("error")
    assert github_token_requests(sim) == 0
    assert_nothing_leaks(run, secret)


def test_creds_json_dry_run_reads_only(simulator, run_action):
    sim = simulator({"instances": 2, "timings": QUICK})
    info = sim.info
    creds = json.dumps({"clientId": info["client_id"], "clientSecret": info["client_secret"],
                        "tenantId": info["tenant_id"], "subscriptionId": info["subscription_id"]}, indent=2)
    inputs = {"resource-group": info["resource_group"], "scale-set-name": info["scale_set_name"],
              "arm-endpoint": info["arm_endpoint"], "creds": creds, "dry-run": "true"}
    run = run_action(inputs, sim=sim, oidc=False)
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["result"] == "dry-run"
    assert not [r for r in sim.requests() if r["method"] in WRITES and "/oauth2/" not in r["path"]]
    assert f"::add-mask::{info['client_secret']}" in run.lines
    assert_nothing_leaks(run, info["client_secret"])


BAD_INPUTS = [
    ({"max-unavailable": "lots"}, "max-unavailable: 'lots' is not accepted"),
    ({"dry-run": "yes"}, "dry-run: 'yes' is not accepted"),
    ({"timeout-minutes": "0"}, "timeout-minutes: '0' is not accepted"),
    ({"resource-group": ""}, "resource-group: (empty) is not accepted"),
    ({"max-unavailable": "0", "max-surge": "0"}, "max-unavailable and max-surge"),
    ({"health-source": "probe"}, "health-source: 'probe' is not accepted; expected auto, extension or none"),
    ({"client-id": "not-a-guid"}, "client-id: 'not-a-guid' is not accepted"),
    ({"creds": "{not json"}, "creds: (hidden) is not accepted (not JSON)"),
    ({"client-id": "", "client-secret": "s3cret-value"}, "client-id: (empty) is not accepted"),
    ({"environment": "AzureGermanCloud"}, "environment: 'AzureGermanCloud' is not accepted; expected "
                                          "AzureCloud, AzureUSGovernment or AzureChinaCloud"),
]


@pytest.mark.parametrize("bad,message", BAD_INPUTS, ids=[m.split(":")[0] for _, m in BAD_INPUTS])
def test_bad_input_is_one_error_exit_2_and_touches_nothing(simulator, run_action, bad, message):
    sim = simulator({"instances": 2})
    run = run_action(sim_inputs(sim, **bad), sim=sim)
    assert run.code == 2, run.stdout + run.stderr
    errors = run.commands("error")
    assert len(errors) == 1 and message in errors[0], run.stdout
    assert "expected" in errors[0]
    assert sim.requests() == []
    assert run.outputs["result"] == "refused"
    assert message in run.summary
    assert run.stderr == ""
    assert_nothing_leaks(run, "s3cret-value")


def test_missing_id_token_permission_says_which_yaml_to_add(simulator, run_action):
    sim = simulator({"instances": 2})
    run = run_action(sim_inputs(sim), sim=sim, oidc=False)
    assert run.code == 2
    (error,) = run.commands("error")
    assert "permissions:%0A  id-token: write" in error  # a multi-line annotation, escaped
    assert sim.requests() == []
    assert "```yaml\npermissions:\n  id-token: write\n  contents: read\n```" in run.summary


FAILING = {"instances": [{"id": "0", "zone": "1"},
                         {"id": "1", "zone": "2", "on_reimage": "fail", "error_code": "OSProvisioningTimedOut"},
                         {"id": "2", "zone": "3"}], "timings": QUICK}


def test_a_failed_reimage_is_an_error_annotation_and_the_surge_stays(simulator, run_action, mode):
    sim = simulator({**FAILING, "orchestration_mode": mode})
    failing = instance_id(sim, "1")
    run = run_action(sim_inputs(sim, **{"max-surge": "1", "instance-ids": f"{failing}"}), sim=sim)
    assert run.code == 1, run.stdout + run.stderr
    assert run.outputs["result"] == "failed"
    assert json.loads(run.outputs["failed-instances"]) == [failing]
    errors = run.commands("error")
    assert len(errors) == 1 and f"Instance {failing}" in errors[0] and "OSProvisioningTimedOut" in errors[0]
    # The instance and the code, each said once by us (Azure's own message may repeat its code).
    name = " (vmss-demo_1)" if mode == "Uniform" else ""  # a Flexible set's id is the VM's name
    assert errors[0].split("::", 2)[2].startswith(
        f"Instance {failing}{name} failed: reimage failed (OSProvisioningTimedOut: VM has reported"), errors[0]
    # After a failure the extra capacity stays, and the action says so.
    report = json.loads((run.workspace / "cycle-vmss-report.json").read_text())
    assert report["capacity"] == {"before": 3, "during": 4, "after": 4}
    assert any("capacity stays at 4" in w for w in run.commands("warning"))
    assert sim.backend.get_scale_set("rg-demo", "vmss-demo").capacity == 4


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cancel_mid_run_writes_outputs_and_exits_130_within_5_seconds(simulator, workspace, signum, mode):
    slow = dict(QUICK, reimage_seconds=30)
    sim = simulator({"instances": 3, "timings": slow, "orchestration_mode": mode})
    env = action_env(workspace, sim_inputs(sim), sim=sim)
    proc = start_action(workspace, env)
    seen: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            seen.append(line)
            if "reimage started" in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert started.wait(60), "".join(seen)
    sent = time.monotonic()
    proc.send_signal(signum)
    code = proc.wait(timeout=10)
    elapsed = time.monotonic() - sent
    reader.join(5)
    proc.stdout = None  # already read
    run = collect(proc, workspace, env)
    run.stdout = "".join(seen)
    assert code == 130, run.stdout + run.stderr
    assert elapsed < 3, f"took {elapsed:.1f} s"
    assert run.outputs["result"] == "cancelled"
    assert json.loads(run.outputs["reimaged-instances"]) == []
    report = json.loads((workspace / "cycle-vmss-report.json").read_text())
    assert [r["id"] for r in report["instances"] if r["action"] == "in-flight"] == [instance_id(sim, "0")]
    assert "⏹️ cycle-vmss cancelled" in run.summary
    assert f"Reimages already started finish in Azure on their own: {instance_id(sim, '0')}." in run.summary
    # Nothing new started after the signal.
    reimages = [r for r in sim.requests() if r["method"] == "POST" and r["path"].endswith("/reimage")]
    assert len(reimages) == 1


@pytest.mark.slow
def test_tokens_that_expire_every_few_seconds_are_fetched_again(simulator, run_action):
    sim = simulator({"instances": 3, "timings": QUICK, "token_lifetime_seconds": 2,
                     "github_oidc_token_lifetime_seconds": 2})
    run = run_action(sim_inputs(sim), sim=sim)
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["result"] == "succeeded"
    assert github_token_requests(sim) >= 3  # a fresh GitHub token for every Entra token
    masked = {l for l in run.lines if l.startswith("::add-mask::eyJ")}
    assert len(masked) >= 3
    assert not [r for r in sim.requests() if r["status"] == 401]
    assert_nothing_leaks(run, sim.info["github_oidc_token"])


def test_cancel_while_azure_core_waits_out_a_long_retry_after_still_ends_within_3_seconds(simulator, workspace):
    """azure-core sleeps through Retry-After without looking at our cancel; the entrypoint stops
    waiting for the run and reports what its log saw."""
    sim = simulator({"instances": 3, "timings": QUICK,
                     "faults": {"throttle_reads_every": 3, "retry_after_seconds": 60}})
    env = action_env(workspace, sim_inputs(sim), sim=sim)
    proc = start_action(workspace, env)
    deadline = time.monotonic() + 30
    while not any(r["status"] == 429 for r in sim.requests()):
        assert time.monotonic() < deadline and proc.poll() is None, "no throttled request"
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    run = collect(proc, workspace, env, timeout=10)
    assert time.monotonic() - sent < 3
    assert run.code == 130, run.stdout + run.stderr
    assert run.outputs["result"] == "cancelled"
    assert json.loads((workspace / "cycle-vmss-report.json").read_text())["result"] == "cancelled"
    assert "⏹️ cycle-vmss cancelled" in run.summary


def test_the_oidc_token_is_asked_for_the_audience_given(simulator, run_action):
    # Entra (here the simulator's) accepts only the audience of the app's federated credential:
    # another audience reaches the token request, and sign-in is refused before any write.
    sim = simulator({"instances": 2})
    run = run_action(sim_inputs(sim, audience="api://SomethingElse"), sim=sim)
    assert run.code == 2, run.stdout + run.stderr
    (error,) = run.commands("error")
    assert "audience 'api://SomethingElse'" in error, error
    assert not [r for r in sim.requests() if r["method"] in WRITES and "/oauth2/" not in r["path"]]


def test_variables_the_step_sets_win_over_the_environment_input(simulator, run_action):
    # environment: AzureChinaCloud fills in only what the step did not set: here the simulator's
    # sign-in host and Resource Manager, so the run never leaves this machine.
    sim = simulator({"instances": 2, "timings": QUICK})
    inputs = sim_inputs(sim, environment="azurechinacloud")
    del inputs["arm-endpoint"]
    run = run_action(inputs, sim=sim, extra={"AZURE_RESOURCE_MANAGER_ENDPOINT": sim.info["arm_endpoint"]})
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["result"] == "succeeded"


def test_outside_a_runner_the_outputs_are_printed_not_a_traceback(simulator, workspace):
    # A local `docker run` has no GITHUB_OUTPUT or step-summary file.
    sim = simulator({"instances": 2, "timings": QUICK})
    env = action_env(workspace, sim_inputs(sim, **{"dry-run": "true"}), sim=sim)
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        os.unlink(env[name])
    proc = start_action(workspace, env)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout + stderr
    assert "Traceback" not in stderr
    assert "output result: dry-run" in stdout.splitlines()
