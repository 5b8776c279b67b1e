#!/usr/bin/env bash
# LibriSpeech (the paper's corpus): train on train_clean_100, validate on dev_clean, decode and score
# dev_clean dev_other test_clean test_other, with baseline (--aux none), multi-task (mtl) and
# adversarial CTC systems. The speaker classifier's label is the reader (data/<set>/utt2spkid);
# train_heldout holds 2 utterances of every training reader (speakers seen in training).
#
#   ./run.sh                                         # download (once) and prepare, then stages 1-5
#   ./run.sh --librispeech-root /corpora             # an existing copy: /corpora/LibriSpeech/<part>/
#   ./run.sh --stage 3 --aux adversarial             # train/decode/score one system on prepared data
#   ./run.sh --untranscribed-set train_clean_360     # semi-supervised: 360 h without text (speaker loss only)
#   ./run.sh --train-config conf/tuning/train_adv_l2_lam0.5.yaml --aux adversarial --stage 3
#
# Options: those of ../../TEMPLATE/asr1/asr.sh, plus --librispeech-root DIR and --parts "p1 p2 ..."
# (transcribed parts to prepare, dashes or underscores), both passed to local/data_prep.sh. With
# --use-lm true, stage 1 also downloads the official LM files (local/download_lm.sh: pruned 3-gram,
# 4-gram, lexicon; md5-checked, resumable) and stage 4 decodes greedily and with the pruned 3-gram
# (flashlight + KenLM; lexicon: the words of librispeech-lexicon.txt spelled in the model's tokens).
# (./run.sh --help lists all.)
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")"

librispeech_root=""     # dir holding an existing LibriSpeech/<part>/; empty: download into downloads/
parts="train-clean-100 dev-clean dev-other test-clean test-other"  # transcribed parts to prepare
untranscribed_set=""    # semi-supervised: a part prepared without text (e.g. train_clean_360); also asr.sh's
data_prep_opts=""       # more options for local/data_prep.sh (added to those run.sh makes)
use_lm=false            # true: download the official LM files and decode with the pruned 3-gram beside greedy
_help=false          # (names starting with _ are not options)
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --librispeech-root) librispeech_root="$2"; shift 2 ;;
    --librispeech-root=*) librispeech_root="${1#*=}"; shift ;;
    --parts) parts="$2"; shift 2 ;;
    --parts=*) parts="${1#*=}"; shift ;;
    --data-prep-opts) data_prep_opts="$2"; shift 2 ;;
    --data-prep-opts=*) data_prep_opts="${1#*=}"; shift ;;
    --use-lm) use_lm="$2"; shift 2 ;;
    --use-lm=*) use_lm="${1#*=}"; shift ;;
    --untranscribed-set) untranscribed_set="$2"; args+=("$1" "$2"); shift 2 ;;
    --untranscribed-set=*) untranscribed_set="${1#*=}"; args+=("$1"); shift ;;
    --help|-h) _help=true; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

# A relative --librispeech-root is relative to where run.sh was called from. (--data-prep-opts is shell
# words: the path is quoted with printf %q, so it may contain spaces; part lists travel comma-separated.)
case "${librispeech_root}" in ""|/*) ;; *) librispeech_root="${caller_dir}/${librispeech_root}" ;; esac
prep="--parts $(echo ${parts} | tr ' ' ',')"
[ -n "${librispeech_root}" ] && prep="${prep} --librispeech-root $(printf %q "${librispeech_root}")"
[ -n "${untranscribed_set}" ] && prep="${prep} --untranscribed-parts ${untranscribed_set}"
lm_opts=(--use-lm "${use_lm}")
if [ "${use_lm}" = true ]; then  # defaults; a later --lm-arpa/--lm-words of the command line wins
  prep="${prep} --lm-files '3-gram.pruned.1e-7.arpa.gz 4-gram.arpa.gz librispeech-lexicon.txt'"
  lm_opts+=(--lm-arpa downloads/lm/3-gram.pruned.1e-7.arpa.gz --lm-words downloads/lm/librispeech-lexicon.txt
            --beam-size 50 --lm-weight 0.5 --word-score 1)
fi
[ -n "${data_prep_opts}" ] && prep="${prep} ${data_prep_opts}"

recipe=(./asr.sh
  --train-config conf/train.yaml
  --train-set train_clean_100 --valid-set dev_clean
  --test-sets "dev_clean dev_other test_clean test_other"
  --heldout-set train_heldout --probe-sets "train_heldout dev_clean"
  --extra-sets "" --nj 8
  --data-prep-opts "${prep}" "${lm_opts[@]}")

if ${_help}; then
  . utils/print_options.sh
  recipe_help "$0" "${recipe[@]}" "${args[@]+"${args[@]}"}"
fi

../../../tools/install.sh

exec "${recipe[@]}" "${args[@]+"${args[@]}"}"
