"""The simulator's one source of ids and random draws."""

import uuid

from cycle_vmss.simulator.randomness import Randomness


def test_the_same_seed_gives_the_same_ids_and_draws():
    def draws(seed):
        source = Randomness(seed)
        return [source.guid(), source.chance(0.5), source.request_guid(), source.request_hex()]
    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


def test_ids_are_version_4_guids():
    source = Randomness(1)
    assert uuid.UUID(source.guid()).version == 4
    assert uuid.UUID(source.request_guid()).version == 4
    assert len(source.request_hex()) == 32


def test_request_ids_never_shift_the_state_machines_draws():
    quiet, busy = Randomness(3), Randomness(3)
    for _ in range(50):
        busy.request_guid()
        busy.request_hex()
    assert [quiet.guid() for _ in range(5)] == [busy.guid() for _ in range(5)]
    assert [quiet.chance(0.5) for _ in range(20)] == [busy.chance(0.5) for _ in range(20)]
