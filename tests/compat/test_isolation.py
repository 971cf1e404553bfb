"""compat/ is sans-IO: importing every module of it pulls in no event loop, web framework, HTTP client or
backend library (DESIGN.md section 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("trio", "quart", "quart_trio", "hypercorn", "llama_cpp", "anthropic", "httpx", "openai")

PROBE = """
import json, pkgutil, importlib, sys
import compat
names = [m.name for m in pkgutil.walk_packages(compat.__path__, "compat.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "modules": sorted(sys.modules)}))
"""


def test_importing_compat_pulls_in_no_io_library() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    report = json.loads(result.stdout)
    assert {
        "compat.openai.chat_request",
        "compat.openai.chat_response",
        "compat.openai.sse",
        "compat.openai.embeddings",
        "compat.anthropic.request",
        "compat.anthropic.stream",
    } <= set(report["imported"])
    leaked = sorted(m for m in report["modules"] if m.split(".")[0] in FORBIDDEN)
    assert leaked == []
