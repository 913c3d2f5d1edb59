"""What a test does when a service it needs (PostgreSQL, Chromium, Playwright) is missing.

Outside CI the test skips and says why (`-ra` lists the reasons). Under CI (`CI=true`, exported by .ci/run) it
fails instead, so coverage never disappears quietly.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def service_missing(reason: str, *, module_level: bool = False) -> NoReturn:
    """Skip (outside CI) or fail (under CI) the current test, fixture or module, with `reason`."""
    if under_ci():
        pytest.fail(f"{reason} [CI=true: a missing service fails the run]", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)
