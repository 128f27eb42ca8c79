import pytest

from tests.integration.proxy.conftest import junction, junction_factory, lt, mock  # noqa: F401


@pytest.fixture
def http1_codec() -> str:
    return "httptools"
