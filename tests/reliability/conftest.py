"""Hypothesis profiles for the reliability suite, chosen with HYPOTHESIS_PROFILE (default `ci`).

- `ci`: 1000 examples, derandomized (the same examples on every run, so CI cannot flake), no
  example database, no deadline (a 60-instance rollout in virtual time may take 0.2 s).
- `explore`: 20000 random examples with the database on, for hunting new failures locally:
  `HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest tests/reliability/test_randomized.py`
  (each failure found this way is added to the test as an `@example`).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile("ci", max_examples=1000, derandomize=True, database=None, deadline=None,
                          suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("explore", max_examples=20000, deadline=None, suppress_health_check=_QUIET,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
