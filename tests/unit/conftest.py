"""Unit-only fixtures, and a guard: unit tests start no servers.

The server fixtures live in ``tests/integration/conftest.py``. Here the same names fail loudly, so a unit
test that asks for one (directly, through another fixture, or via ``request.getfixturevalue``) is caught
instead of silently starting a server.
"""

from __future__ import annotations

import pytest


def _refuse(name: str) -> None:
    pytest.fail(f"unit tests may not start servers: fixture {name!r} is integration-only; "
                "move the test under tests/integration", pytrace=False)


@pytest.fixture(scope="session")
def s3_server() -> None:
    _refuse("s3_server")


@pytest.fixture
def s3_bucket() -> None:
    _refuse("s3_bucket")
