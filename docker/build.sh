#!/usr/bin/env bash
# Build the runtime image (see dstack_prefect/executors/_docker_image.py; same as `dstack image build`).
#
#   docker/build.sh [--python 3.11] [--cuda] [--base IMAGE] [--slim] [--if-missing]
#
# Without registry access: .ci/docker-setup.sh first, then --base dstack-prefect/base:bookworm.
# Prints the built tag on stdout. Wheels are cached in docker/.wheelhouse (not in git).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python3}" -m dstack_prefect.executors._docker_image "$@"
