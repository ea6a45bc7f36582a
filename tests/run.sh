#!/usr/bin/env bash
# Install what the test suite needs and run all of it (the README's test command; CI calls it).
#
#   bash tests/run.sh [pytest args...]
#
# 1. Python deps: this package with its [test] extra (prefect, moto server, hypothesis, ...).
# 2. A Docker engine and the test images, built without a registry (.ci/docker-setup.sh; needs
#    root the first time: apt docker.io + debootstrap). Set DSTACK_SKIP_DOCKER=1 to skip this step
#    locally; the Docker tests then skip with the reason (in CI, CI=true, they fail instead).
# 3. Lint: ruff (rules and format) and mypy (strict on the package and tests/typing/api.py).
# 4. pytest over tests/ (real Prefect server, real Docker engine, moto server subprocesses).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python3 -m pip install --disable-pip-version-check -q -e ".[test]"
if [ "${DSTACK_SKIP_DOCKER:-0}" != "1" ]; then
  bash .ci/docker-setup.sh
fi
python3 -m ruff check --quiet dstack_prefect tests bench
python3 -m ruff format --check --quiet dstack_prefect tests bench
python3 -m mypy dstack_prefect tests
exec python3 -m pytest -q -p no:cacheprovider "$@"
