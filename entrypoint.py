"""The GitHub Action's entrypoint (PID 1 of the container): inputs, credential, run, report.

Everything the user sees is rendered by `cycle_vmss.github`; the run itself is
`cycle_vmss.runner.execute`, shared with the CLI and the pipelines mode.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time

from cycle_vmss.signals import install_signal_handlers

# First, before the heavy imports below: as PID 1 a cancel during start-up would otherwise be
# ignored (SIGTERM) or end without outputs (SIGINT).
CANCELLED = threading.Event()
install_signal_handlers(CANCELLED)

from actions_toolkit import core  # noqa: E402

from cycle_vmss import github  # noqa: E402
from cycle_vmss.report import exit_code, write_report  # noqa: E402
from cycle_vmss.runner import execute  # noqa: E402
from cycle_vmss.settings import SETTINGS, SettingError, Spelling, build_settings  # noqa: E402

AUTH_INPUTS = ("client-id", "tenant-id", "client-secret", "creds")
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
CANCEL_GRACE_SECONDS = 2.0  # SPEC: exit 130 within 3 s of the signal (the runner sends SIGTERM at 7.5 s)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_TENANT = re.compile(r"^(?:[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|[A-Za-z0-9][A-Za-z0-9.-]{0,252})$")
_MICROSOFT_AUTHORITIES = ("login.microsoftonline.com", "login.chinacloudapi.cn", "login.microsoftonline.us")
ID_TOKEN_YAML = """\
This job cannot request a GitHub OIDC token: give it the permission (and keep the ones it needs):
permissions:
  id-token: write
  contents: read"""


class Refusal(Exception):
    """Bad input or sign-in setup: one line for `::error::`, exit 2, nothing touched."""


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


def parse_creds(raw: str) -> dict[str, str]:
    """The JSON azure/login accepts; only the four keys a service principal needs are used."""
    accepted = 'the JSON azure/login accepts: {"clientId", "clientSecret", "tenantId", "subscriptionId"}'
    try:
        creds = json.loads(raw)
    except ValueError:
        raise Refusal(f"creds: (hidden) is not accepted (not JSON); expected {accepted}") from None
    if not isinstance(creds, dict):
        raise Refusal(f"creds: (hidden) is not accepted (not a JSON object); expected {accepted}")
    missing = [k for k in ("clientId", "clientSecret", "tenantId") if not str(creds.get(k) or "").strip()]
    if missing:
        raise Refusal(f"creds: (hidden) is not accepted (no {', '.join(missing)}); expected {accepted}")
    return {k: str(v).strip() for k, v in creds.items() if isinstance(v, (str, int))}


def _check(name: str, value: str, pattern: re.Pattern, accepted: str) -> str:
    if not pattern.match(value):
        raise Refusal(f"{name}: {value!r} is not accepted; expected {accepted}")
    return value


def _authority_kwargs(environ: dict[str, str]) -> dict:
    authority = environ.get("AZURE_AUTHORITY_HOST", "").strip()
    if not authority:
        return {}
    if not authority.startswith("https://"):
        raise Refusal(f"AZURE_AUTHORITY_HOST: {authority!r} is not accepted; expected an https:// "
                      "URL such as https://login.microsoftonline.com")
    kwargs: dict = {"authority": authority}
    if re.sub(r"^https://", "", authority).rstrip("/").lower() not in _MICROSOFT_AUTHORITIES:
        # MSAL would ask login.microsoftonline.com about a foreign authority; it cannot know it.
        kwargs["disable_instance_discovery"] = True
    return kwargs


def github_id_token(environ: dict[str, str]):
    """A callback returning a FRESH GitHub OIDC token on every call: Entra asks for a new
    assertion whenever its own token expires, and GitHub's token lives only minutes."""
    import requests
    from azure.core.exceptions import ClientAuthenticationError

    url, bearer = environ["ACTIONS_ID_TOKEN_REQUEST_URL"], environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
    separator = "&" if "?" in url else "?"
    full = f"{url}{separator}audience={requests.utils.quote(EXCHANGE_AUDIENCE, safe='')}"

    def fetch() -> str:
        try:
            answer = requests.get(full, headers={"Authorization": f"Bearer {bearer}"}, timeout=30)
            token = answer.json().get("value") if answer.status_code == 200 else None
        except (requests.RequestException, ValueError, AttributeError) as err:
            raise ClientAuthenticationError(message=f"GitHub OIDC token request failed: {type(err).__name__}") from None
        if not token:
            raise ClientAuthenticationError(
                message=f"GitHub OIDC token request failed: HTTP {answer.status_code}")
        core.set_secret(token)
        return token

    return fetch


def choose_credential(inputs: dict[str, str], environ: dict[str, str]):
    """(credential or None for the default chain, how it signs in), in the documented order:
    creds, client-secret (or AZURE_CLIENT_SECRET), GitHub OIDC, the default chain."""
    from azure.identity import ClientAssertionCredential, ClientSecretCredential

    kwargs = _authority_kwargs(environ)
    if inputs.get("creds"):
        creds = parse_creds(inputs["creds"])
        _check("creds", creds["clientId"], _GUID, "a clientId GUID in creds")
        _check("creds", creds["tenantId"], _TENANT, "a tenantId GUID or domain in creds")
        return (ClientSecretCredential(creds["tenantId"], creds["clientId"], creds["clientSecret"], **kwargs),
                f"service principal {creds['clientId']} (creds) in tenant {creds['tenantId']}")
    client_id = inputs.get("client-id") or environ.get("AZURE_CLIENT_ID", "").strip()
    tenant_id = inputs.get("tenant-id") or environ.get("AZURE_TENANT_ID", "").strip()
    secret = inputs.get("client-secret") or environ.get("AZURE_CLIENT_SECRET", "").strip()
    if secret:
        if not client_id or not tenant_id:
            missing = " and ".join(n for n, v in (("client-id", client_id), ("tenant-id", tenant_id)) if not v)
            raise Refusal(f"{missing}: (empty) is not accepted (client-secret needs it); expected "
                          "the service principal's application id and its tenant id")
        _check("client-id", client_id, _GUID, "an application (client) id GUID")
        _check("tenant-id", tenant_id, _TENANT, "a tenant id GUID or domain")
        return (ClientSecretCredential(tenant_id, client_id, secret, **kwargs),
                f"service principal {client_id} (client secret) in tenant {tenant_id}")
    if inputs.get("client-id") and inputs.get("tenant-id"):
        _check("client-id", client_id, _GUID, "an application (client) id GUID")
        _check("tenant-id", tenant_id, _TENANT, "a tenant id GUID or domain")
        if not (environ.get("ACTIONS_ID_TOKEN_REQUEST_URL") and environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")):
            raise Refusal(ID_TOKEN_YAML)
        return (ClientAssertionCredential(tenant_id, client_id, github_id_token(environ), **kwargs),
                f"GitHub OIDC as {client_id} in tenant {tenant_id}")
    if inputs.get("client-id") or inputs.get("tenant-id"):
        missing = "tenant-id" if inputs.get("client-id") else "client-id"
        raise Refusal(f"{missing}: (empty) is not accepted (GitHub OIDC needs client-id and "
                      "tenant-id together); expected a GUID")
    return None, "the default credential chain (environment, workload identity, managed identity)"


def default_report_path(environ: dict[str, str]) -> str:
    """The report is always written: in the workspace, so later steps and artifacts see it."""
    return os.path.join(environ.get("GITHUB_WORKSPACE") or os.getcwd(), github.DEFAULT_REPORT_NAME)


def finish(report: dict, report_file: str, log: github.GitHubLog, environ: dict[str, str]) -> int:
    """Outputs, annotations, summary: everything a user sees after the run."""
    log.finish(report)
    for line in github.annotations(report):
        sys.stdout.write(line + "\n")
    github.write_outputs(github.outputs(report, report_file, environ.get("GITHUB_WORKSPACE")))
    github.write_summary(github.render_summary(report))
    sys.stdout.flush()
    return exit_code(report)


def refuse(message: str, inputs: dict[str, str], environ: dict[str, str]) -> int:
    """Bad input or sign-in setup: one `::error::`, outputs, summary and report; exit 2."""
    report = github.refusal_report(message, resource_group=inputs.get("resource-group") or None,
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
    github.write_outputs(github.outputs(report, path, environ.get("GITHUB_WORKSPACE")))
    github.write_summary(github.render_summary(report))
    sys.stdout.flush()
    return 2


def main() -> int:
    cancelled = CANCELLED
    environ = dict(os.environ)
    inputs = read_inputs()
    mask_secrets(inputs, environ)
    log = github.GitHubLog()

    raw = {spec.field: inputs[spec.action] for spec in SETTINGS}
    if not raw["report_file"]:
        raw["report_file"] = default_report_path(environ)
    try:
        if not raw["subscription_id"] and inputs.get("creds"):
            raw["subscription_id"] = parse_creds(inputs["creds"]).get("subscriptionId", "")
        settings = build_settings(raw, Spelling.ACTION)
        credential, how = choose_credential(inputs, environ)
    except (SettingError, Refusal) as err:
        return refuse(str(err), inputs, environ)

    log.line(f"cycle-vmss: scale set {settings.scale_set_name} in {settings.resource_group}; "
             f"signing in with {how}")
    done: dict = {}

    def rollout() -> None:
        try:
            done["report"] = execute(settings, credential=credential, listener=log, cancelled=cancelled)
        except BaseException as err:  # a bug, not an Azure problem: still end with a report
            done["error"] = err
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
    report = done.get("report")
    if report is None and "error" in done:
        report = github.refusal_report(f"internal error: {type(done['error']).__name__}: {done['error']}",
                                       resource_group=settings.resource_group,
                                       scale_set=settings.scale_set_name)
        report["result"] = "failed"
        write_report(report, settings.report_file)
        return finish(report, settings.report_file, log, environ)
    if report is None:
        # The engine did not come back in time (a request still hanging): report what the log saw.
        report = log.cancelled_report(settings)
        write_report(report, settings.report_file)
        code = finish(report, settings.report_file, log, environ)
        os._exit(code)  # the rollout thread may still be inside a request; do not wait for it
    return finish(report, settings.report_file, log, environ)


if __name__ == "__main__":
    sys.exit(main())
