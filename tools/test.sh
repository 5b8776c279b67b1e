#!/usr/bin/env bash
# Install the environment if it is missing, then run the test suite on 2 worker processes
# (pytest-xdist; each test module stays on one worker, so its fixtures are built once). Extra
# arguments go to pytest and may override that:
#   tools/test.sh -k grl
#   tools/test.sh -n 0            # one process
set -euo pipefail
root=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && cd .. && pwd)
"$root/tools/install.sh"
cd "$root"
exec "$root/tools/venv/bin/python" -m pytest -q -p no:xdist tests "$@"
