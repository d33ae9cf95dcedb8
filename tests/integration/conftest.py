"""Fixtures of the integration tests; the helpers they use are in tests/integration/helpers.py."""

import pytest

from tests.integration.helpers import run_worker


@pytest.fixture
def worker():
    with run_worker() as w:
        yield w
