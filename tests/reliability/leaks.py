"""What must never be printed: the client secret, the job's GitHub request token, every token the
simulator issued (Entra access tokens, GitHub OIDC tokens used as client assertions), and
anything shaped like a JWT. `record_tokens(sim)` makes a running simulator remember what it
issued; `assert_no_secrets(sim, *texts)` scans outputs, summaries, reports and traces."""

from __future__ import annotations

import re

JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}")


def record_tokens(sim) -> list[str]:
    """Wrap the simulator's token issuers (in this process) so every issued token is kept."""
    issued: list[str] = []
    identity = sim.identity
    if getattr(identity, "_issued_record", None) is not None:
        return identity._issued_record
    entra, github = identity.issue_token, identity.issue_github_token

    def issue_token(*args, **kwargs):
        body = entra(*args, **kwargs)
        issued.append(body["access_token"])
        return body

    def issue_github_token(*args, **kwargs):
        body = github(*args, **kwargs)
        issued.append(body["value"])
        return body

    identity.issue_token, identity.issue_github_token = issue_token, issue_github_token
    identity._issued_record = issued
    return issued


def secrets_of(sim, extra: tuple[str, ...] = ()) -> list[str]:
    info = sim.info
    values = [info["client_secret"], info["github_oidc_token"], *extra]
    values += getattr(sim.identity, "_issued_record", None) or []
    return [v for v in values if v]


# The masking commands themselves carry the secret to the runner/agent, which consumes them
# and never shows them; every other line is what a user can read.
MASK_COMMANDS = ("::add-mask::", "##vso[task.setsecret]")


def shown(text: str) -> str:
    return "\n".join(l for l in text.splitlines() if not l.startswith(MASK_COMMANDS))


def assert_no_secrets(sim, *texts: str, extra: tuple[str, ...] = ()) -> None:
    secrets = secrets_of(sim, extra)
    for text in map(shown, texts):
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:6]}...) was printed"
        match = JWT.search(text)
        assert match is None, f"a token-shaped string was printed: {match.group(0)[:16]}..."
