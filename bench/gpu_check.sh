#!/usr/bin/env bash
# The device-side GPU check (docs/gpu.md): run from the repository root by the `run` tool with
# carry = ["build/gpu-carry"] (made by bench/gpu/prepare.py). Writes $OUT/gpu_report.json.
#   bash bench/gpu_check.sh                       # every step, within 560 s
#   bash bench/gpu_check.sh --steps logits,negotiation
# The Python driver uses only the standard library: the system python runs it.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python3 || command -v python)}"
exec "$PY" bench/gpu/check.py "$@"
