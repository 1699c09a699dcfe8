#!/usr/bin/env bash
# The prepared GPU check, for one call of the device tool on a lent GPU machine:
#   1. here:  echo /.whl/ >> .git/info/exclude   (once), then the pip download line of gpu-wheels.txt
#   2. device run, carrying .whl:  bash benchmarks/gpu.sh   (about 5 minutes on an H200)
# It installs the carried wheels and skclap itself (no network there), then prints benchmarks/gpu.py's table.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --no-index --no-deps .whl/*.whl
python3 -m pip install --quiet --no-index --no-deps --no-build-isolation -e .
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 benchmarks/gpu.py "$@"
