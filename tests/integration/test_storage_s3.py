"""The storage contract on a real S3-protocol server (moto on 127.0.0.1).

The checks are in tests/storage_contract.py; the ``integration`` marker comes from tests/integration/conftest.py.
"""

from __future__ import annotations

import pytest

from seaice_tasks.storage import Lake, lake_from_env
from tests.storage_contract import StorageContract


class TestS3Lake(StorageContract):
    @pytest.fixture
    def lake(self, s3_bucket: str) -> Lake:
        return lake_from_env(f"s3://{s3_bucket}/seaice")
