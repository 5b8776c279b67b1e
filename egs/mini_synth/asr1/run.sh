#!/usr/bin/env bash
# The default recipe: a synthetic multi-speaker corpus made offline with eSpeak NG, then baseline
# (--aux none), multi-task (mtl) and adversarial CTC systems, each trained, decoded and scored.
#
#   ./run.sh                                          # everything, all three systems
#   ./run.sh --stage 3 --stop-stage 3 --aux adversarial
#   ./run.sh --corpus-opts "--tiny"                   # a few speakers, for a quick look
#
# Options: those of ../../TEMPLATE/asr1/asr.sh, plus --corpus-opts (for asr_gr.bin.make_mini_synth).
set -euo pipefail
cd "$(dirname "$0")"

corpus_opts=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-opts) corpus_opts="$2"; shift 2 ;;
    --corpus-opts=*) corpus_opts="${1#*=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

../../../tools/install.sh

./asr.sh \
  --train-config conf/train.yaml \
  --train-set train --valid-set dev --test-sets "dev test" --heldout-set train_heldout \
  --extra-sets untranscribed \
  --data-prep-opts "${corpus_opts}" \
  "${args[@]+"${args[@]}"}"
