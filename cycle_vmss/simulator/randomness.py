"""Every id and random draw of one simulator, from its scenario's seed.

Two streams from the one seed: `guid`, `hex8` and `chance` serve the state machine and its
faults (the set's uniqueId, vmIds, Flexible VM names, operation ids, which requests answer 500),
so a seeded scenario replays exactly in virtual time; `request_guid` and `request_hex` serve what each HTTP request mints
(x-ms-request-id, Entra's trace ids, token ids), so that how many requests arrive never shifts
the state machine's draws.
"""

from __future__ import annotations

import random
import uuid


class Randomness:
    def __init__(self, seed: int) -> None:
        self._state = random.Random(seed)
        self._requests = random.Random(f"requests:{seed}")

    def guid(self) -> str:
        return str(_uuid4(self._state))

    def hex8(self) -> str:
        """8 hex digits, as a Flexible VM's name ends (`<set>_1a2b3c4d`)."""
        return f"{self._state.getrandbits(32):08x}"

    def chance(self, probability: float) -> bool:
        """True with `probability`."""
        return self._state.random() < probability

    def sample(self, population: list, k: int) -> list:
        """`k` distinct members of `population`, in no particular order."""
        return self._state.sample(population, k)

    def request_guid(self) -> str:
        return str(_uuid4(self._requests))

    def request_hex(self) -> str:
        """A GUID's 32 hex digits, as Entra spells token ids."""
        return _uuid4(self._requests).hex


def _uuid4(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)
