#!/usr/bin/env bash
# Make the mini_synth corpus (eSpeak NG voices, see asr_gr/corpora/mini_synth.py) and its Kaldi data
# dirs data/{train,train_heldout,dev,test,untranscribed}. Extra options go to make_mini_synth
# (e.g. --tiny, --seed 3). Reruns with the same options do nothing.
set -euo pipefail
python -m asr_gr.bin.make_mini_synth --out downloads/mini_synth --data data "$@"
