#!/usr/bin/env bash
# Install the environment if it is missing, then run the test suite in one process. Extra arguments
# go to pytest:
#   tools/test.sh -k grl
#   tools/test.sh -n 2 --dist loadfile   # 2 worker processes (pytest-xdist; not yet reliable, README)
set -euo pipefail
root=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && cd .. && pwd)
"$root/tools/install.sh"
cd "$root"
exec "$root/tools/venv/bin/python" -m pytest -q tests "$@"
