#!/usr/bin/env bash
# CMU AN4 (real speech: 74 training speakers spelling and saying census data, ~50 min train, ~6 min
# test), then baseline (--aux none), multi-task (mtl) and adversarial CTC systems, each trained,
# decoded and scored.
#
#   ./run.sh                                   # download AN4 into downloads/ (once), everything
#   ./run.sh --an4-root /corpora/an4           # use an existing copy (the dir with etc/ and wav/)
#   ./run.sh --stage 3 --stop-stage 5 --aux adversarial
#
# Options: those of ../../TEMPLATE/asr1/asr.sh, plus --an4-root (./run.sh --help lists all).
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")"

an4_root=""             # an existing AN4 copy (the dir with etc/ and wav/); empty: download into downloads/
_help=false          # (names starting with _ are not options)
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) _help=true; shift ;;
    --an4-root) an4_root="$2"; shift 2 ;;
    --an4-root=*) an4_root="${1#*=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

# A relative --an4-root is relative to where run.sh was called from. (--data-prep-opts is shell words:
# the path is quoted with printf %q, so it may contain spaces.)
case "${an4_root}" in ""|/*) ;; *) an4_root="${caller_dir}/${an4_root}" ;; esac

recipe=(./asr.sh
  --train-config conf/train.yaml
  --train-set train --valid-set dev --test-sets "dev test" --heldout-set train_heldout
  --extra-sets ""
  --data-prep-opts "${an4_root:+--an4-root $(printf %q "${an4_root}")}")

if ${_help}; then
  . utils/print_options.sh
  recipe_help "$0" "${recipe[@]}" "${args[@]+"${args[@]}"}"
fi

../../../tools/install.sh

exec "${recipe[@]}" "${args[@]+"${args[@]}"}"
