#!/usr/bin/env bash
# Create tools/venv with the pinned environment (tools/requirements.txt) and asr_gr installed in
# editable mode. Idempotent: when the venv already holds exactly these pins, it does nothing.
#   tools/install.sh            # uses python3.11 if present, else python3
#   PYTHON=/path/to/python3.11 tools/install.sh
set -euo pipefail
root=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && cd .. && pwd)
venv="$root/tools/venv"
req="$root/tools/requirements.txt"
stamp="$venv/.asr_gr_installed"
want=$(cat "$req" "$root/setup.py" | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  exit 0
fi

py=${PYTHON:-}
if [ -z "$py" ]; then
  if command -v python3.11 >/dev/null 2>&1; then py=python3.11; else py=python3; fi
fi
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)'; then
  echo "tools/install.sh: need Python >= 3.11, '$py' is $("$py" --version 2>&1)" >&2
  exit 1
fi

echo "tools/install.sh: installing the pinned environment into $venv (about 2 minutes)" >&2
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -qq --upgrade pip
"$venv/bin/python" -m pip install -qq -r "$req"
"$venv/bin/python" -m pip install -qq --no-deps --no-build-isolation -e "$root"
"$venv/bin/python" -c 'import torch, torchaudio, kaldiio, sentencepiece, yaml, jiwer, soundfile, tqdm, espeakng_loader, matplotlib, flashlight.lib.text.decoder, tensorboard, xdist, asr_gr'
echo "$want" > "$stamp"
echo "tools/install.sh: done ($("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'))" >&2
