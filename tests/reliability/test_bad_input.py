"""The bad-input table: every case of issue 6 through a real front end as a subprocess (the CLI,
the action's `entrypoint.py` with `INPUT_*`, the pipelines mode with `TF_BUILD` and
`CYCLE_VMSS_*`), each against a running simulator. Each must print one line naming the setting
(or the Azure resource), the value and what is accepted, exit 2, and the simulator must have
seen zero write calls. All cases run at once (module fixture) to keep the table fast."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cycle_vmss.simulator.server import running_simulator

from .leaks import assert_no_secrets, record_tokens

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FAST = {"reimage_seconds": 0.4, "boot_seconds": 0.2, "health_seconds": 0.2,
        "create_seconds": 0.4, "delete_seconds": 0.2}
FLAG = {"resource_group": "--resource-group", "scale_set_name": "--scale-set-name"}
REPAIRS_ACTION = "Microsoft.Compute/virtualMachineScaleSets/setOrchestrationServiceState/action"


@dataclass(frozen=True)
class Bad:
    id: str
    front: str  # cli | action | pipeline
    values: dict  # field name -> raw value ("" = empty)
    expect: tuple[str, ...]  # must all appear in the one line (setting, value, accepted)
    scenario: dict | None = None  # its own simulator; None = the shared one
    auth: str = "ok"  # ok | bad-secret (401) | forbidden (403)
    extra_env: dict = field(default_factory=dict)


CASES = [
    Bad("empty-group", "cli", {"resource_group": ""}, ("--resource-group", "(empty)", "expected")),
    Bad("whitespace-set", "action", {"scale_set_name": "   "}, ("scale-set-name", "(empty)", "expected")),
    Bad("group-bad-chars", "pipeline", {"resource_group": "rg/web"}, ("resourceGroupName", "'rg/web'", "expected a resource group name")),
    Bad("group-trailing-dot", "cli", {"resource_group": "rg-web."}, ("--resource-group", "'rg-web.'", "not ending in '.'")),
    Bad("set-leading-dash", "action", {"scale_set_name": "-vmss"}, ("scale-set-name", "'-vmss'", "starting with a letter or digit")),
    Bad("set-too-long", "cli", {"scale_set_name": "v" * 65}, ("--scale-set-name", "v" * 65, "1-64")),
    Bad("subscription-not-guid", "cli", {"subscription_id": "my-subscription"}, ("--subscription-id", "'my-subscription'", "GUID")),
    Bad("timeout-abc", "cli", {"timeout_minutes": "abc"}, ("--timeout-minutes", "'abc'", "1 to 1440")),
    Bad("timeout-0", "action", {"timeout_minutes": "0"}, ("timeout-minutes", "'0'", "1 to 1440")),
    Bad("timeout-negative", "pipeline", {"timeout_minutes": "-5"}, ("timeoutMinutes", "'-5'", "1 to 1440")),
    Bad("timeout-1e9", "cli", {"timeout_minutes": "1e9"}, ("--timeout-minutes", "'1e9'", "1 to 1440")),
    Bad("unavailable-negative", "action", {"max_unavailable": "-1"}, ("max-unavailable", "'-1'", "0% to 100%")),
    Bad("unavailable-fraction", "pipeline", {"max_unavailable": "1.5"}, ("maxUnavailable", "'1.5'", "0% to 100%")),
    Bad("unavailable-150%", "cli", {"max_unavailable": "150%"}, ("--max-unavailable", "'150%'", "0% to 100%")),
    Bad("unavailable-bare-%", "action", {"max_unavailable": "%"}, ("max-unavailable", "'%'", "0% to 100%")),
    Bad("both-budgets-0", "pipeline", {"max_unavailable": "0", "max_surge": "0"}, ("maxUnavailable and maxSurge", "0 and 0", "at least one")),
    Bad("boolean-yes", "cli", {"dry_run": "yes"}, ("--dry-run", "'yes'", "true or false")),
    Bad("boolean-on", "action", {"ignore_initial_health": "on"}, ("ignore-initial-health", "'on'", "true or false")),
    Bad("repairs-yes", "pipeline", {"suspend_automatic_repairs": "yes"}, ("suspendAutomaticRepairs", "'yes'", "true or false")),
    Bad("health-source-unknown", "pipeline", {"health_source": "probe"}, ("healthSource", "'probe'", "auto, extension or none")),
    Bad("since-no-offset", "cli", {"skip_reimaged_since": "2026-12-04T10:00:00"}, ("--skip-reimaged-since", "'2026-12-04T10:00:00'", "with its offset")),
    Bad("since-bad-unit", "action", {"skip_reimaged_since": "7w"}, ("skip-reimaged-since", "'7w'", "90m, 12h or 7d")),
    Bad("since-zero", "pipeline", {"skip_reimaged_since": "0d"}, ("skipReimagedSince", "'0d'", "a duration back")),
    Bad("stop-after-0", "cli", {"stop_after": "0"}, ("--stop-after", "'0'", "a whole number >= 1")),
    Bad("stop-after-0%", "action", {"stop_after": "0%"}, ("stop-after", "'0%'", "from 1% to 100%")),
    Bad("stop-after-abc", "pipeline", {"stop_after": "one"}, ("stopAfter", "'one'", "a whole number >= 1")),
    Bad("gate-url-ftp", "action", {"gate_url": "ftp://status.example.com/"}, ("gate-url", "'ftp://status.example.com/'", "an http:// or https:// URL")),
    Bad("max-failed-negative", "cli", {"max_failed": "-1"}, ("--max-failed", "'-1'", "a whole number >= 0")),
    Bad("max-failed-over-100%", "pipeline", {"max_failed": "150%"}, ("maxFailed", "'150%'", "from 0% to 100%")),
    Bad("apply-model-yes", "cli", {"apply_latest_model": "yes"}, ("--apply-latest-model", "'yes'", "true or false")),
    Bad("apply-model-flexible", "action", {"apply_latest_model": "true"}, ("vmss-demo", "apply-latest-model", "Flexible"), {"instances": 2, "orchestration_mode": "Flexible"}),
    Bad("report-missing-folder", "cli", {"report_file": "/nonexistent-folder/run.json"}, ("--report-file", "/nonexistent-folder/run.json", "folder")),
    # Preflight: read only, then refused (each with its own simulator).
    Bad("instance-not-in-set", "cli", {"instance_ids": "0,99"}, ("instance-ids", "99", "is not in scale set vmss-demo"), {"instances": 3}),
    Bad("set-does-not-exist", "action", {"scale_set_name": "vmss-nope"}, ("vmss-nope", "was not found"), {"instances": 2}),
    Bad("group-does-not-exist", "pipeline", {"resource_group": "rg-nope"}, ("rg-nope", "was not found"), {"instances": 2}),
    Bad("401-bad-secret", "cli", {}, ("vmss-demo", "could not get an Azure token", "AZURE_CLIENT_SECRET"), {"instances": 2}, auth="bad-secret"),
    Bad("403-no-role", "action", {}, ("vmss-demo", "AuthorizationFailed"), {"instances": 2}, auth="forbidden"),
    *(Bad(f"403-suspend-repairs-{front}", front, {}, ("vmss-demo", REPAIRS_ACTION, way_out),
          {"instances": 2, "automatic_repairs": {}, "denied_actions": [REPAIRS_ACTION]})
      for front, way_out in (("cli", "--suspend-automatic-repairs false"),
                             ("action", "suspend-automatic-repairs: false"),
                             ("pipeline", "suspendAutomaticRepairs: false"))),
    Bad("flexible-set-reimage-all", "pipeline", {"reimage_all": "true"}, ("vmss-demo", "reimage-all", "Flexible orchestration"), {"instances": 2, "orchestration_mode": "Flexible"}),
    Bad("empty-set", "cli", {}, ("vmss-demo", "nothing to reimage", "no instances"), {"instances": 0}),
    Bad("every-instance-stopped", "action", {}, ("vmss-demo", "nothing to reimage", "stopped"),
        {"instances": [{"id": "0", "power": "stopped"}, {"id": "1", "power": "deallocated"}]}),
    Bad("no-health-extension", "pipeline", {}, ("vmss-demo", "ApplicationHealthLinux", "health-source: none"),
        {"instances": 2, "health_extension": False}),
]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AZURE_", "CYCLE_VMSS_", "INPUT_", "GITHUB_", "ACTIONS_", "TF_BUILD",
                                 "SYSTEM_", "AZURESUBSCRIPTION_"))
            and k not in ("REQUESTS_CA_BUNDLE",)}


def command_for(case: Bad, sim, workdir: Path) -> tuple[list[str], dict[str, str]]:
    info = sim.info
    values = {"resource_group": info["resource_group"], "scale_set_name": info["scale_set_name"],
              "poll_interval_seconds": "1", **case.values}
    env = {**_clean_env(), "PYTHONUNBUFFERED": "1", **sim.env(), **case.extra_env}
    if case.auth == "bad-secret":
        env["AZURE_CLIENT_SECRET"] = "not-the-secret"
    if case.front == "cli":
        argv = [sys.executable, "-m", "cycle_vmss"]
        for name, value in values.items():
            argv.append(f"--{name.replace('_', '-')}={value}")
        return argv, env
    if case.front == "pipeline":
        env.update({"TF_BUILD": "True", "AGENT_TEMPDIRECTORY": str(workdir)})
        env.update({f"CYCLE_VMSS_{name.upper()}": value for name, value in values.items()})
        return [sys.executable, "-m", "cycle_vmss"], env
    # The action: INPUT_<NAME> with hyphens kept, the runner's file commands, sign-in inputs.
    files = workdir / "files"
    files.mkdir(parents=True, exist_ok=True)
    for name in ("output", "step_summary"):
        (files / name).touch()
    for key in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
        env.pop(key, None)
    client = info["forbidden_client_id"] if case.auth == "forbidden" else info["client_id"]
    inputs = {**{k.replace("_", "-"): v for k, v in values.items()},
              "subscription-id": info["subscription_id"], "arm-endpoint": info["arm_endpoint"],
              "client-id": client, "tenant-id": info["tenant_id"], "client-secret": info["client_secret"]}
    env.update({"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workdir),
                "GITHUB_OUTPUT": str(files / "output"), "GITHUB_STEP_SUMMARY": str(files / "step_summary")})
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    return [sys.executable, str(ROOT / "entrypoint.py")], env


def error_lines(case: Bad, done: subprocess.CompletedProcess) -> list[str]:
    """The lines a user reads as the error, per front end."""
    if case.front == "cli":
        return [l for l in done.stderr.splitlines() if l.strip()]
    if case.front == "action":  # the runner shows the message decoded
        return [l.split("::", 2)[-1].replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
                for l in done.stdout.splitlines() if l.startswith("::error")]
    return [l.split("]", 1)[-1].replace("%0D", "\r").replace("%0A", "\n").replace("%AZP25", "%")
            for l in done.stdout.splitlines() if l.startswith("##vso[task.logissue") and "type=error" in l]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every case run at once; each case's simulator stays up until the module is done."""
    with ExitStack() as stack:
        shared = stack.enter_context(running_simulator({"instances": 3, "timings": FAST}))
        sims = {c.id: stack.enter_context(running_simulator({"timings": FAST, **c.scenario}))
                if c.scenario is not None else shared for c in CASES}
        for sim in {id(s): s for s in sims.values()}.values():
            record_tokens(sim)

        # Made here, not in the threads: mktemp is not thread-safe.
        workdirs = {c.id: tmp_path_factory.mktemp(c.id) for c in CASES}

        def one(case: Bad):
            workdir = workdirs[case.id]
            argv, env = command_for(case, sims[case.id], workdir)
            done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True,
                                  timeout=60, check=False)
            # Everything the user gets: stdout, stderr, the step summary, the written report(s).
            written = [f.read_text() for f in workdir.rglob("*") if f.is_file()]
            return done, written

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(zip([c.id for c in CASES], pool.map(one, CASES)))
        yield results, sims, shared


def test_the_table_has_every_front_end_and_at_least_25_cases():
    assert len(CASES) >= 25 and {c.front for c in CASES} == {"cli", "action", "pipeline"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_exit_2_and_no_write(case: Bad, outcomes):
    results, sims, _ = outcomes
    done, written = results[case.id]
    assert done.returncode == 2, (done.stdout[-2000:], done.stderr[-2000:])
    lines = error_lines(case, done)
    assert len(lines) == 1, (lines, done.stdout[-2000:], done.stderr[-2000:])
    for needle in case.expect:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in done.stderr + done.stdout
    assert_no_secrets(sims[case.id], done.stdout, done.stderr, *written,
                      extra=("not-the-secret",) if case.auth == "bad-secret" else ())
    writes = [r for r in sims[case.id].requests() if r["method"] not in ("GET", "HEAD")
              and r["path"].startswith("/subscriptions/") and r["status"] < 400]
    assert writes == []  # none that Azure accepted (a refused one changed nothing)


def test_settings_errors_never_reached_azure(outcomes):
    _, _, shared = outcomes
    assert [r for r in shared.requests() if r["path"].startswith("/subscriptions/")] == []
