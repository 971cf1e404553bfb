"""compat/ is pure translation: its own tests must exercise every branch of it (the issue's bar: 100%)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_NESTED = "TRINFER_COVERAGE_RUN"


@pytest.mark.skipif(os.environ.get(_NESTED) == "1", reason="this is the nested coverage run itself")
def test_compat_tests_cover_every_branch_of_compat() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/compat",
            "-q",
            "-p",
            "no:cacheprovider",
            "--cov=compat",
            "--cov-branch",
            "--cov-report=term-missing:skip-covered",
            "--cov-fail-under=100",
        ],
        cwd=ROOT,
        env={**os.environ, _NESTED: "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
