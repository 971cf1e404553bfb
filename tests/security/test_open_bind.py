"""Threat: an operator exposes the server to the network without an API key.

Defence: binding a non-loopback address without any API key is a configuration error: the process prints one
line and exits 2 before binding anything.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from proxy.config import ConfigError, config_from_mapping
from tests.daemon_harness import process_env

BACKENDS = [{"name": "mock", "kind": "mock", "models": ["mock-echo"]}]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_non_loopback_bind_without_a_key_exits_2_with_one_line(host: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--backend", "mock", "--host", host, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=process_env(),
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "non-loopback" in lines[0]
    assert "api_keys" in lines[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.3.4.5"])
def test_loopback_needs_no_key(host: str) -> None:
    config = config_from_mapping({"server": {"host": host}, "backends": BACKENDS})
    assert config.server.host == host


def test_non_loopback_with_a_key_is_allowed() -> None:
    config = config_from_mapping({"server": {"host": "0.0.0.0", "api_keys": ["sk-x"]}, "backends": BACKENDS})
    assert config.api_keys == ("sk-x",)
    with pytest.raises(ConfigError, match="non-loopback"):
        config_from_mapping({"server": {"host": "0.0.0.0", "api_keys": []}, "backends": BACKENDS})
