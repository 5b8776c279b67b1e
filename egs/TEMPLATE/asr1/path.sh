# Activate the toolkit's environment (tools/install.sh creates it).
ASR_GR_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
export ASR_GR_ROOT
if [ ! -f "${ASR_GR_ROOT}/tools/venv/bin/activate" ]; then
  echo "path.sh: ${ASR_GR_ROOT}/tools/venv is missing; run ${ASR_GR_ROOT}/tools/install.sh" >&2
  return 1
fi
. "${ASR_GR_ROOT}/tools/venv/bin/activate"
export LC_ALL=C
export PYTHONUNBUFFERED=1
