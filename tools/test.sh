#!/usr/bin/env bash
# Install the environment if it is missing, then run the test suite. Extra arguments go to pytest:
#   tools/test.sh -k grl
set -euo pipefail
root=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && cd .. && pwd)
"$root/tools/install.sh"
cd "$root"
exec "$root/tools/venv/bin/python" -m pytest -q tests "$@"
