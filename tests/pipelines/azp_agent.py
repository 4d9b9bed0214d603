"""An Azure Pipelines agent for one step: the template expanded, its AzureCLI@2 script run with bash
in the environment the task gives, against the simulator over HTTPS on 127.0.0.1.

What stands in for the hosted agent:
- the install step is replaced by PATH: the repo's .venv/bin comes first (no network);
- the Azure CLI session that AzureCLI@2 opens is an `az` on PATH that only answers
  `az account show` with the service connection's subscription, plus azure-identity's
  environment credential for the service principal's secret (AzureCliCredential would run a
  real `az`); with workload identity the tool uses AzurePipelinesCredential, whose OIDC request
  goes to `AdoOidcEndpoint` below, which hands out a federated token issued by the simulator.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import azp_expander

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "azure-pipelines-template.yml"
CONSUMER = REPO / "examples" / "azure-pipelines-consumer.yml"
VENV_BIN = Path(sys.executable).parent
SYSTEM_ACCESS_TOKEN = "ado-system-access-token-7f3c"  # the job's System.AccessToken
SERVICE_CONNECTION_ID = "5e1c0c4e-0000-4000-8000-00000000c0de"


class AdoOidcEndpoint:
    """SYSTEM_OIDCREQUESTURI: Azure DevOps' federated-token endpoint for a service connection.
    It checks the job's access token and the connection id, and answers `{"oidcToken"}` with a
    token the simulator's Entra accepts as a client assertion (issued by its OIDC issuer)."""

    def __init__(self, info: dict) -> None:
        self.info = info
        self.calls: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                endpoint.calls.append({"path": self.path,
                                       "authorization": self.headers.get("Authorization")})
                ok = (self.headers.get("Authorization") == f"Bearer {SYSTEM_ACCESS_TOKEN}"
                      and f"serviceConnectionId={SERVICE_CONNECTION_ID}" in self.path)
                body = json.dumps({"oidcToken": endpoint._federated()} if ok else
                                  {"message": "TF400813: not authorized"}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/org/project/_apis/distributedtask/hubs/build/plans/1/jobs/2/oidctoken"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _federated(self) -> str:
        context = ssl.create_default_context(cafile=self.info["ca_bundle"])
        request = urllib.request.Request(
            self.info["github_oidc_url"] + "&audience=api%3A%2F%2FAzureADTokenExchange",
            headers={"Authorization": f"Bearer {self.info['github_oidc_token']}"})
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:  # noqa: S310
            return json.load(answer)["value"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class StepRun:
    """What one AzureCLI@2 step did."""

    returncode: int
    stdout: str
    stderr: str
    env: dict[str, str]
    script: str
    lines: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.lines = self.stdout.splitlines()

    def commands(self, area_action: str) -> list[str]:
        return [line for line in self.lines if line.startswith(f"##vso[{area_action}")]

    def outputs(self) -> dict[str, str]:
        found = {}
        for line in self.commands("task.setvariable"):
            head, _, value = line.partition("]")
            props = dict(p.split("=", 1) for p in head[len("##vso[task.setvariable "):].split(";") if p)
            assert props.get("isOutput") == "true", line
            found[props["variable"]] = value
        return found

    def issues(self, kind: str) -> list[str]:
        prefix = f"##vso[task.logissue type={kind};]"
        return [line[len(prefix):] for line in self.lines if line.startswith(prefix)]

    def summary_path(self) -> Path:
        uploads = self.commands("task.uploadsummary")
        assert len(uploads) == 1, self.stdout
        return Path(uploads[0].split("]", 1)[1])


class Agent:
    """Runs the template's AzureCLI@2 step the way the agent would."""

    def __init__(self, root: Path, sim, oidc: AdoOidcEndpoint) -> None:
        self.root, self.sim, self.oidc = root, sim, oidc
        self.dirs = {name: root / sub for name, sub in (
            ("AGENT_TEMPDIRECTORY", "_temp"), ("BUILD_SOURCESDIRECTORY", "s"),
            ("BUILD_ARTIFACTSTAGINGDIRECTORY", "a"), ("BUILD_BINARIESDIRECTORY", "b"),
            ("HOME", "home"), ("SHIMS", "shims"))}
        for folder in self.dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        az = self.dirs["SHIMS"] / "az"
        az.write_text(
            "#!/bin/sh\n# The task's Azure CLI session, as far as the tool asks it.\n"
            f'if [ "$1 $2" = "account show" ]; then echo {sim.info["subscription_id"]}; exit 0; fi\n'
            'echo "ERROR: not available in this test" >&2; exit 1\n')
        az.chmod(0o755)

    def environment(self, step: dict, identity: str) -> dict[str, str]:
        info = self.sim.info
        env = {
            "PATH": os.pathsep.join([str(VENV_BIN), str(self.dirs["SHIMS"]), "/usr/bin", "/bin"]),
            "LANG": "C.UTF-8",
            "TF_BUILD": "True",
            "AGENT_BUILDDIRECTORY": str(self.root),
            "SYSTEM_DEFAULTWORKINGDIRECTORY": str(self.dirs["BUILD_SOURCESDIRECTORY"]),
            "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI": "https://dev.azure.com/org/",
            "BUILD_BUILDID": "42",
            # Where the simulator is (public Azure needs none of these).
            "AZURE_AUTHORITY_HOST": info["authority_host"],
            "AZURE_RESOURCE_MANAGER_ENDPOINT": info["arm_endpoint"],
            "REQUESTS_CA_BUNDLE": info["ca_bundle"],
            # addSpnToEnvironment: true
            "servicePrincipalId": info["client_id"],
            "tenantId": info["tenant_id"],
        }
        env.update({k: str(v) for k, v in self.dirs.items() if k != "SHIMS"})
        if identity == "secret":
            env["servicePrincipalKey"] = info["client_secret"]
            # The CLI session of a secret-based connection, as the default chain's first member.
            env.update(AZURE_CLIENT_ID=info["client_id"], AZURE_TENANT_ID=info["tenant_id"],
                       AZURE_CLIENT_SECRET=info["client_secret"])
        elif identity == "workload":
            env["idToken"] = self.oidc._federated()
            env.update(AZURESUBSCRIPTION_CLIENT_ID=info["client_id"],
                       AZURESUBSCRIPTION_TENANT_ID=info["tenant_id"],
                       AZURESUBSCRIPTION_SERVICE_CONNECTION_ID=SERVICE_CONNECTION_ID,
                       SYSTEM_OIDCREQUESTURI=self.oidc.url)
        else:
            raise ValueError(identity)
        variables = {"System.AccessToken": SYSTEM_ACCESS_TOKEN,
                     "Agent.TempDirectory": env["AGENT_TEMPDIRECTORY"],
                     "Build.SourcesDirectory": env["BUILD_SOURCESDIRECTORY"],
                     "Build.ArtifactStagingDirectory": env["BUILD_ARTIFACTSTAGINGDIRECTORY"]}
        env.update(azp_expander.step_env(step, variables))
        return env

    def run(self, parameters: dict, *, identity: str = "secret", timeout: float = 90) -> StepRun:
        process, env, script = self.start(parameters, identity=identity)
        stdout, stderr = process.communicate(timeout=timeout)
        return StepRun(process.returncode, stdout, stderr, env, script)

    def start(self, parameters: dict, *, identity: str = "secret"):
        """The step's bash as a process of its own group (the agent stops the whole tree)."""
        given = {"azureSubscription": "my-arm-connection",
                 "resourceGroupName": self.sim.info["resource_group"],
                 "scaleSetName": self.sim.info["scale_set_name"], **parameters}
        steps = azp_expander.expand(TEMPLATE, given)
        step = azp_expander.task_step(steps, "AzureCLI@2")
        inputs = step["inputs"]
        assert inputs["scriptType"] == "bash" and inputs["addSpnToEnvironment"] is True
        script = inputs["inlineScript"]
        path = self.dirs["AGENT_TEMPDIRECTORY"] / "azureclitaskscript.sh"
        path.write_text(script)
        env = self.environment(step, identity)
        process = subprocess.Popen(["bash", str(path)], env=env, cwd=env["SYSTEM_DEFAULTWORKINGDIRECTORY"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        return process, env, script


# Short timings so a three-instance rollout takes seconds.
FAST_TIMINGS = {"reimage_seconds": 0.3, "boot_seconds": 0.2, "health_seconds": 0.2,
                "create_seconds": 0.3, "delete_seconds": 0.2}
FAST = {"instances": 3, "timings": FAST_TIMINGS}
