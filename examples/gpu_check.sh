#!/usr/bin/env bash
# The GPU check, prepared for a machine with an NVIDIA GPU and torch installed:
# run from the repository root, it installs this checkout, then runs the `gpu-check` workflow
# (`gpu: 1`: `nvidia-smi -L` and a torch CUDA matmul) through the local executor on the
# embedded default (its own Prefect server under a temp DSTACK_HOME), prints the run, and stops
# the server. A few minutes at most; exit status is the run's.
#
#   bash examples/gpu_check.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 -m pip install -q --disable-pip-version-check -e . 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check --no-deps -e .
export DSTACK_HOME="${DSTACK_HOME:-$(mktemp -d -t dstack-gpu-check.XXXX)}"
unset PREFECT_API_URL
echo "== host: $(nvidia-smi -L 2>&1 | head -4)"
dstack run gpu-check
code=$?
dstack ps -a -v
dstack server stop
exit $code
