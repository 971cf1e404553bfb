"""The ``[server] ws_max_requests_per_socket`` setting: default, validation, environment variable."""

from __future__ import annotations

import pytest

from proxy.config import ConfigError, Flags, config_from_mapping, load_config
from tests.daemon_harness import mock_config


def test_the_default_is_8() -> None:
    assert config_from_mapping(mock_config()).server.ws_max_requests_per_socket == 8


def test_the_file_sets_it() -> None:
    config = config_from_mapping(mock_config(server={"ws_max_requests_per_socket": 2}))
    assert config.server.ws_max_requests_per_socket == 2


@pytest.mark.parametrize("value", [0, -1, 1.5, "8", True])
def test_anything_but_a_positive_integer_is_refused_naming_the_key(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(mock_config(server={"ws_max_requests_per_socket": value}))
    assert "server.ws_max_requests_per_socket" in str(caught.value)


def test_the_environment_variable_sets_it() -> None:
    config = load_config(Flags(backend="mock"), {"TRINFER_WS_MAX_REQUESTS_PER_SOCKET": "3"})
    assert config.server.ws_max_requests_per_socket == 3
