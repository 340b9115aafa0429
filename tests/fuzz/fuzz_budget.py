"""Example budgets for the fuzz tests: modest in CI (2 cores), large with KVCLAIMS_THOROUGH=1."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

THOROUGH = os.environ.get("KVCLAIMS_THOROUGH") == "1"


def budget(ci: int, thorough: int) -> int:
    return thorough if THOROUGH else ci


def hsettings(ci: int, thorough: int) -> settings:
    return settings(max_examples=budget(ci, thorough), deadline=None, derandomize=not THOROUGH,
                    database=None, suppress_health_check=[HealthCheck.too_slow,
                                                          HealthCheck.filter_too_much,
                                                          HealthCheck.data_too_large])
