#!/usr/bin/env bash
# The default recipe: a synthetic multi-speaker corpus made offline with eSpeak NG, then baseline
# (--aux none), multi-task (mtl) and adversarial CTC systems, each trained, decoded and scored.
#
#   ./run.sh                                          # everything, all three systems
#   ./run.sh --stage 3 --stop-stage 3 --aux adversarial
#   ./run.sh --corpus-opts "--tiny"                   # a few speakers, for a quick look
#   ./run.sh --grid conf/grid.yaml                    # the ablation grid (exp/grid.md)
#   ./run.sh --grid conf/grid.yaml --grid-opts "--jobs 4 --cores-per-job 2"   # 4 systems at once
#   ./run.sh --grid conf/grid.yaml --cmd-backend slurm   # each system one Slurm job (cmd.sh, conf/slurm.conf)
#
# Options: those of ../../TEMPLATE/asr1/asr.sh, plus --corpus-opts, --grid and --grid-opts (./run.sh --help lists all).
set -euo pipefail
cd "$(dirname "$0")"

corpus_opts=""          # options for asr_gr.bin.make_mini_synth (local/data_prep.sh), e.g. "--tiny"
grid=""                 # a grid file (conf/grid.yaml): train, decode, score and probe every system it lists
grid_opts=""            # options for asr_gr.bin.grid, e.g. "--jobs 4 --cores-per-job 2" (4 systems at once)
_help=false          # (names starting with _ are not options)
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) _help=true; shift ;;
    --corpus-opts) corpus_opts="$2"; shift 2 ;;
    --corpus-opts=*) corpus_opts="${1#*=}"; shift ;;
    --grid) grid="$2"; shift 2 ;;
    --grid=*) grid="${1#*=}"; shift ;;
    --grid-opts) grid_opts="$2"; shift 2 ;;
    --grid-opts=*) grid_opts="${1#*=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

# Training on the speed-perturbed training set (0.9, 1.0, 1.1: three "speakers" of every one; at equal
# updates it takes 2.3 points off the unseen test speakers' greedy WER, RESULTS.md "Convergence").
# Decoding: greedy and, beside it, the flashlight beam search with a word 3-gram (modified Kneser-Ney)
# of the training transcripts (stage 2: data/lm/char/), so RESULTS.md shows both. Beam 100, sized by
# measurement: the doubling to 200 buys less than one WER point (whole interval) for 1.6x the search.
recipe=(./asr.sh
  --train-config conf/train.yaml
  --train-set train --valid-set dev --test-sets "dev test" --heldout-set train_heldout
  --extra-sets "untranscribed probe" --probe-sets "probe train_heldout"
  --speed-perturb-factors "0.9 1.0 1.1"
  --use-lm true --lm-order 3 --beam-size 100 --lm-weight 1 --word-score 0
  --data-prep-opts "${corpus_opts}")

if ${_help}; then
  . utils/print_options.sh
  recipe_help "$0" "${recipe[@]}" "${args[@]+"${args[@]}"}"
fi

../../../tools/install.sh

if [ -n "${grid}" ]; then
  . ./path.sh
  exec python -m asr_gr.bin.grid --grid "${grid}" ${grid_opts} -- "${recipe[@]}" "${args[@]+"${args[@]}"}"
fi
exec "${recipe[@]}" "${args[@]+"${args[@]}"}"
