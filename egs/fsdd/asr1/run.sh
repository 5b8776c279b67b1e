#!/usr/bin/env bash
# FSDD, the free spoken digit dataset (real speech: 6 speakers x 10 digits x 50 takes, 8 kHz, about
# 22 minutes), then baseline (--aux none), multi-task (mtl) and adversarial CTC systems, each trained,
# decoded, scored, probed for speaker information per layer, and compared (stages 1-7).
#
#   ./run.sh                                        # download FSDD into downloads/ (once), stages 1-7
#   ./run.sh --fsdd-root /corpora/fsdd              # an existing copy (the dir with recordings/)
#   ./run.sh --corpus-opts "--test-speaker jackson --dev-speaker nicolas"
#   ./run.sh --stage 3 --stop-stage 5 --aux adversarial
#
# Options: those of ../../TEMPLATE/asr1/asr.sh, plus --fsdd-root and --corpus-opts (./run.sh --help lists all).
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")"

fsdd_root=""            # an existing FSDD copy (the dir with recordings/); empty: download into downloads/
corpus_opts=""          # options for local/data_prep.sh: --test-speaker, --dev-speaker, --heldout-takes, --max-takes
_help=false          # (names starting with _ are not options)
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) _help=true; shift ;;
    --fsdd-root) fsdd_root="$2"; shift 2 ;;
    --fsdd-root=*) fsdd_root="${1#*=}"; shift ;;
    --corpus-opts) corpus_opts="$2"; shift 2 ;;
    --corpus-opts=*) corpus_opts="${1#*=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

# A relative --fsdd-root is relative to where run.sh was called from. (--data-prep-opts is shell words:
# the path is quoted with printf %q, so it may contain spaces.)
case "${fsdd_root}" in ""|/*) ;; *) fsdd_root="${caller_dir}/${fsdd_root}" ;; esac

# 8 kHz recordings: stage 2 computes fbank at 8 kHz (--fs 8000; a recording at another rate is
# resampled). Stage 4 decodes greedily and with flashlight's lexicon search over the ten digit words
# (a word 2-gram of the training transcripts: every utterance is one word, so the LM is a uniform choice
# of one lexicon word): on the unseen dev speaker that took word accuracy from 13 % to 49 % (README.md).
# Stage 6 probes the held-out takes of all six speakers (probe) and of the four training speakers
# (train_heldout).
recipe=(./asr.sh
  --train-config conf/train.yaml
  --train-set train --valid-set dev --test-sets "dev test" --heldout-set train_heldout
  --extra-sets "" --probe-sets "probe train_heldout"
  --fs 8000 --num-mel-bins 40
  --use-lm true --lm-order 2 --beam-size 20 --lm-weight 1 --word-score 0
  --stop-stage 7
  --data-prep-opts "${fsdd_root:+--fsdd-root $(printf %q "${fsdd_root}")} ${corpus_opts}")

if ${_help}; then
  . utils/print_options.sh
  recipe_help "$0" "${recipe[@]}" "${args[@]+"${args[@]}"}"
fi

../../../tools/install.sh

exec "${recipe[@]}" "${args[@]+"${args[@]}"}"
