"""The GitHub Action's entrypoint (PID 1 of the container): inputs, settings, run, outputs.

Everything the user sees is rendered by `cycle_vmss.github`, the sign-in is chosen by
`cycle_vmss.credentials.for_action`, and the run itself is `cycle_vmss.runner.execute`, shared
with the CLI and the pipelines mode.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import replace

from cycle_vmss.signals import install_signal_handlers

# First, before the heavy imports below: as PID 1 a cancel during start-up would otherwise be
# ignored (SIGTERM) or end without outputs (SIGINT).
CANCELLED = threading.Event()
install_signal_handlers(CANCELLED)

from actions_toolkit import core  # noqa: E402
from azure.core.credentials import TokenCredential  # noqa: E402

from cycle_vmss import credentials, github  # noqa: E402
from cycle_vmss.report import Report, exit_code, write_report  # noqa: E402
from cycle_vmss.runner import execute  # noqa: E402
from cycle_vmss.settings import SETTINGS, SettingError, Settings, Spelling, build_settings  # noqa: E402

AUTH_INPUTS = ("client-id", "tenant-id", "client-secret", "creds", "audience", "environment")
CANCEL_GRACE_SECONDS = 2.0  # exit 130 within 3 s of the signal (the runner sends SIGTERM at 7.5 s)


def read_inputs() -> dict[str, str]:
    """Every input by its action name. The runner passes `INPUT_<NAME>` with hyphens kept."""
    names = [spec.action for spec in SETTINGS] + list(AUTH_INPUTS)
    return {name: core.get_input(name) for name in names}


def mask_secrets(inputs: dict[str, str], environ: dict[str, str]) -> None:
    """`::add-mask::` before anything could print them; the runner then hides them in the log."""
    secrets = [inputs.get("client-secret", ""), environ.get("AZURE_CLIENT_SECRET", ""),
               environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")]
    creds = inputs.get("creds", "")
    if creds:
        if "\n" not in creds.strip():
            secrets.append(creds)
        try:
            secrets.append(str(json.loads(creds).get("clientSecret") or ""))
        except (ValueError, AttributeError):
            pass
    for secret in secrets:
        if secret and secret.strip():
            core.set_secret(secret.strip())


def default_report_path(environ: dict[str, str]) -> str:
    """The report is always written: in the workspace, so later steps and artifacts see it."""
    return os.path.join(environ.get("GITHUB_WORKSPACE") or os.getcwd(), github.DEFAULT_REPORT_NAME)


def settings_from(inputs: dict[str, str], environ: dict[str, str]) -> Settings:
    """The run's settings from the inputs; the report always goes to a file (in the workspace
    unless `report-file` says where), and `creds` may carry the subscription."""
    raw = {spec.field: inputs[spec.action] for spec in SETTINGS}
    if not raw["report_file"]:
        raw["report_file"] = default_report_path(environ)
    if not raw["subscription_id"] and inputs.get("creds"):
        raw["subscription_id"] = credentials.parse_creds(inputs["creds"]).get("subscriptionId", "")
    return build_settings(raw, Spelling.ACTION)


def run(settings: Settings, credential: TokenCredential | None, log: github.GitHubLog,
        cancelled: threading.Event) -> Report | None:
    """`execute` in a thread, so that a cancel ends the step in time even while a request to
    Azure hangs: None when the engine has not returned CANCEL_GRACE_SECONDS after the signal.
    A bug still ends with a report (result `failed`) before its trace."""
    done: list[Report] = []

    def rollout() -> None:
        try:
            done.append(execute(settings, credential=credential, listener=log, cancelled=cancelled))
        except BaseException as err:
            report = replace(Report.refused(f"internal error: {type(err).__name__}: {err}",
                                            resource_group=settings.resource_group,
                                            scale_set=settings.scale_set_name), result="failed")
            write_report(report, settings.report_file)
            done.append(report)
            raise

    worker = threading.Thread(target=rollout, name="rollout", daemon=True)
    worker.start()
    cancelled_at = None
    try:
        while worker.is_alive():
            worker.join(0.1)
            if cancelled.is_set():
                cancelled_at = cancelled_at or time.monotonic()
                if time.monotonic() - cancelled_at > CANCEL_GRACE_SECONDS:
                    break
    except KeyboardInterrupt:  # a second signal: stop waiting at once
        pass
    return done[0] if done else None


def finish(report: Report, report_file: str, log: github.GitHubLog, environ: dict[str, str]) -> int:
    """Outputs, annotations, summary: everything a user sees after the run."""
    log.finish(report)
    for line in github.annotations(report):
        sys.stdout.write(line + "\n")
    github.write_outputs(report.outputs(report_file, environ.get("GITHUB_WORKSPACE")))
    github.write_summary(github.render_summary(report))
    sys.stdout.flush()
    return exit_code(report)


def refuse(message: str, inputs: dict[str, str], environ: dict[str, str]) -> int:
    """Bad input or sign-in setup: one `::error::`, outputs, summary and report; exit 2."""
    report = Report.refused(message, resource_group=inputs.get("resource-group") or None,
                            scale_set=inputs.get("scale-set-name") or None)
    path = ""
    for candidate in (inputs.get("report-file"), default_report_path(environ)):
        try:
            if candidate:
                write_report(report, candidate)
                path = candidate
                break
        except OSError:
            continue
    # The one `::error::` line the user sees; annotations() would repeat it.
    sys.stdout.write(github.command("error", message, "cycle-vmss: refused") + "\n")
    github.write_outputs(report.outputs(path, environ.get("GITHUB_WORKSPACE")))
    github.write_summary(github.render_summary(report))
    sys.stdout.flush()
    return 2


def main() -> int:
    environ = dict(os.environ)
    inputs = read_inputs()
    mask_secrets(inputs, environ)
    try:
        # `environment` names the cloud; variables the step sets itself still win.
        cloud = credentials.cloud_variables(inputs.get("environment", ""))
        for name, value in cloud.items():
            if not environ.get(name, "").strip():
                os.environ[name] = environ[name] = value
        settings = settings_from(inputs, environ)
        credential, how = credentials.for_action(inputs, environ, mask=core.set_secret)
    except (SettingError, credentials.SetupError) as err:
        return refuse(str(err), inputs, environ)

    log = github.GitHubLog()
    log.line(f"cycle-vmss: scale set {settings.scale_set_name} in {settings.resource_group}; "
             f"signing in with {how}")
    report = run(settings, credential, log, CANCELLED)
    if report is None:
        # The engine did not come back in time (a request still hanging): report what the log saw.
        report = log.cancelled_report(settings)
        write_report(report, settings.report_file)
        os._exit(finish(report, settings.report_file, log, environ))  # do not wait for the rollout thread
    return finish(report, settings.report_file, log, environ)


if __name__ == "__main__":
    sys.exit(main())
