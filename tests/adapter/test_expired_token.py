"""A token that expires on its way to ARM: 401 ExpiredAuthenticationToken, and ARM did nothing.
azure-identity hands out its cached token until the second it expires (and asks for no new one
within 30 s of its last request), so with short-lived tokens one such request is a matter of
time; it is asked once more, with the fresh token the credential now gives."""

from __future__ import annotations

import time

from azure.identity import ClientSecretCredential

from cycle_vmss.azure_adapter import AzureComputePort
from cycle_vmss.compute import OperationState

from .conftest import arm_requests, wait

SCOPE = "https://management.azure.com/.default"


class ExpiredOnce:
    """The simulator's credential, except that its next answer after `stale` is set is a token
    that has already expired."""

    def __init__(self, sim):
        info = sim.info
        self.credential = ClientSecretCredential(
            info["tenant_id"], info["client_id"], info["client_secret"],
            authority=info["authority_host"], disable_instance_discovery=True,
            connection_verify=info["ca_bundle"])
        self.stale = None

    def expired_token(self):
        token = self.credential.get_token(SCOPE)
        time.sleep(max(0.0, token.expires_on - time.time()) + 0.1)
        return token

    def get_token(self, *scopes, **kwargs):
        stale, self.stale = self.stale, None
        return stale or self.credential.get_token(*scopes, **kwargs)


def port_for(sim, credential) -> AzureComputePort:
    info = sim.info
    return AzureComputePort(credential, info["subscription_id"], info["resource_group"],
                            info["scale_set_name"], arm_endpoint=info["arm_endpoint"],
                            polling_interval=0.25, connection_verify=info["ca_bundle"])


def test_a_reimage_request_refused_for_an_expired_token_is_asked_once_more(simulate):
    sim = simulate({"token_lifetime_seconds": 1})
    credential = ExpiredOnce(sim)
    credential.stale = credential.expired_token()

    wait(port_for(sim, credential).begin_reimage("0"))

    posts = [r["status"] for r in arm_requests(sim) if r["method"] == "POST"]
    assert posts == [401, 202]
    assert len(sim.history()["instances"]["0"]["reimages"]) == 1


def test_a_list_refused_for_an_expired_token_is_read_once_more(simulate):
    sim = simulate({"instances": 5, "page_size": 2, "token_lifetime_seconds": 1})
    credential = ExpiredOnce(sim)
    credential.stale = credential.expired_token()

    assert [i.id for i in port_for(sim, credential).list_instances()] == ["0", "1", "2", "3", "4"]
    assert [r["status"] for r in arm_requests(sim)] == [401, 200, 200, 200]


def test_a_status_poll_refused_for_an_expired_token_is_asked_once_more(simulate):
    sim = simulate({"token_lifetime_seconds": 1, "timings": {"reimage_seconds": 2}})
    credential = ExpiredOnce(sim)
    stale = credential.expired_token()
    op = port_for(sim, credential).begin_reimage("0")
    credential.stale = stale  # the operation's next status poll gets it

    assert wait(op).state is OperationState.SUCCEEDED
    polls = [r["status"] for r in arm_requests(sim) if "/operations/" in r["path"]]
    assert 401 in polls and polls[polls.index(401) + 1] == 200  # asked at once, and answered
