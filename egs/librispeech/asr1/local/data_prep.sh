#!/usr/bin/env bash
# Kaldi data dirs data/<part> (train_clean_100, dev_clean, dev_other, test_clean, test_other, ...) and
# data/train_heldout for LibriSpeech (asr_gr/corpora/librispeech.py).
#
#   local/data_prep.sh                                    # download the parts into downloads/, prepare
#   local/data_prep.sh --librispeech-root /corpora        # an existing copy: /corpora/LibriSpeech/<part>/
#   local/data_prep.sh --parts train-clean-100,dev-clean --untranscribed-parts train-clean-360
#
# Stage 0 (skipped with --librispeech-root): download <part>.tar.gz from openslr.org/12 into
# downloads/ (resumable: wget -c / curl -C -), verify its md5 against the official list, extract it to
# downloads/LibriSpeech/<part>/ and mark it with .done; parts with a .done marker are skipped.
# Also in stage 0, with --lm-files: the LM resources of openslr.org/11 (local/download_lm.sh).
# Stage 1: python -m asr_gr.bin.prepare_librispeech. Part lists are comma or space separated, with
# dashes or underscores (train-clean-100 = train_clean_100). An untranscribed part is made from its
# <reader>/<chapter>/*.flac files; its trans.txt files are not read (they need not exist).
set -euo pipefail

stage=0
stop_stage=1
librispeech_root=""     # an existing copy (the dir holding LibriSpeech/, or LibriSpeech/ itself); "": downloads/
parts="train-clean-100,dev-clean,dev-other,test-clean,test-other"  # prepared with text
untranscribed_parts=""  # training parts prepared without text (semi-supervised), e.g. train-clean-360
heldout_per_reader=2    # utterances of every transcribed training reader moved to data/train_heldout
heldout_set=train_heldout
seed=1
durations=true          # write utt2dur (reads every FLAC header; false is faster on the 960 h)
download_dir=downloads
url_base=https://www.openslr.org/resources/12
remove_archive=false    # delete <part>.tar.gz once extracted
lm_files=""             # openslr 11 LM files to fetch into downloads/lm/ (local/download_lm.sh), e.g.
                        # "3-gram.pruned.1e-7.arpa.gz 4-gram.arpa.gz librispeech-lexicon.txt"; run.sh --use-lm true sets it

. utils/parse_options.sh

log() {
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[0]##*/}:${BASH_LINENO[0]}) $*" >&2
}

# Official md5 sums of the archives, from https://www.openslr.org/resources/12/md5sum.txt (the same
# values are pinned in e.g. PaddlePaddle DeepSpeech's and Lhotse's LibriSpeech downloaders).
declare -A md5=(
  [train-clean-100]=2a93770f6d5c6c964bc36631d331a522
  [train-clean-360]=c0e676e450a7ff2f54aeade5171606fa
  [train-other-500]=d1a0fd59409feb2c614ce4d30c387708
  [dev-clean]=42e2234ba48799c1f50f24a7926300a1
  [dev-other]=c8d0bcc9cca99d4f8b62fcc847357931
  [test-clean]=32fa31d27d2e1cad72775fee3f4849a9
  [test-other]=fb5a50374b501bb3bac4815ee91d3135
)

norm() { echo "$*" | tr ',' ' ' | tr '_' '-' | xargs -n1 2>/dev/null | awk 'NF && !seen[$0]++' | xargs; }
parts=$(norm "${parts}")
untranscribed_parts=$(norm "${untranscribed_parts}")
for p in ${parts} ${untranscribed_parts}; do
  if [ -z "${md5[$p]+set}" ]; then
    log "ERROR: unknown LibriSpeech part '${p}'; known: ${!md5[*]}"; exit 1
  fi
done

md5_of() {
  if command -v md5sum >/dev/null; then md5sum "$1" | awk '{print $1}'; else md5 -q "$1"; fi
}

if [ -n "${librispeech_root}" ]; then
  if [ ! -d "${librispeech_root}" ]; then
    log "ERROR: --librispeech-root ${librispeech_root} does not exist"; exit 1
  fi
  log "using the LibriSpeech copy in ${librispeech_root}; not downloading"
elif [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  mkdir -p "${download_dir}"
  for p in ${parts} ${untranscribed_parts}; do
    if [ -f "${download_dir}/LibriSpeech/${p}/.done" ]; then
      log "${download_dir}/LibriSpeech/${p} is extracted (.done); skipping"; continue
    fi
    tarball=${download_dir}/${p}.tar.gz
    if [ ! -f "${tarball}.md5ok" ]; then
      log "downloading ${url_base}/${p}.tar.gz to ${tarball} (resumable: rerun to continue)"
      utils/download.sh "${url_base}/${p}.tar.gz" "${tarball}" || {
        log "ERROR: downloading ${url_base}/${p}.tar.gz failed; rerun to resume, or download and extract it yourself and pass --librispeech-root"; exit 1; }
      log "checking the md5 of ${tarball}"
      got=$(md5_of "${tarball}")
      if [ "${got}" != "${md5[$p]}" ]; then
        log "ERROR: ${tarball}: md5 ${got}, expected ${md5[$p]} (openslr md5sum.txt); delete it and rerun"; exit 1
      fi
      touch "${tarball}.md5ok"
    fi
    log "extracting ${tarball} into ${download_dir}/LibriSpeech/${p}"
    tar -xzf "${tarball}" -C "${download_dir}"
    if [ ! -d "${download_dir}/LibriSpeech/${p}" ]; then
      log "ERROR: ${tarball} holds no LibriSpeech/${p}/; delete it and rerun"; exit 1
    fi
    touch "${download_dir}/LibriSpeech/${p}/.done"
    if [ "${remove_archive}" = true ]; then rm -f "${tarball}" "${tarball}.md5ok"; fi
  done
fi
[ -n "${librispeech_root}" ] || librispeech_root=${download_dir}
if [ -n "${lm_files}" ] && [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  local/download_lm.sh --lm-files "${lm_files}" --download-dir "${download_dir}"
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  opts=""; [ "${durations}" = true ] || opts="--no-durations"
  python -m asr_gr.bin.prepare_librispeech --root "${librispeech_root}" --data data \
    --parts "${parts}" ${untranscribed_parts:+--untranscribed "${untranscribed_parts}"} \
    --heldout-per-reader "${heldout_per_reader}" --heldout-set "${heldout_set}" --seed "${seed}" ${opts}
fi
