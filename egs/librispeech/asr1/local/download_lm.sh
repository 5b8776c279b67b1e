#!/usr/bin/env bash
# The official LibriSpeech language-model resources (https://www.openslr.org/11) into downloads/lm/:
# resumable (utils/download.sh: wget -c / curl -C -; rerun after an interruption), each file checked
# against its official md5 and marked <file>.md5ok; a file with a marker is not fetched again.
#
#   local/download_lm.sh                                  # the default files below
#   local/download_lm.sh --lm-files "4-gram.arpa.gz"      # some of them
#
# 3-gram.pruned.1e-7.arpa.gz (34 MB) is the LM the recipe decodes with by default; 4-gram.arpa.gz
# (1.3 GB) the large one (--lm-arpa downloads/lm/4-gram.arpa.gz); librispeech-lexicon.txt (the 200k-word
# vocabulary with CMU pronunciations: its words, spelled in the model's tokens, form the decoding lexicon).
set -euo pipefail

lm_files="3-gram.pruned.1e-7.arpa.gz 4-gram.arpa.gz librispeech-lexicon.txt"  # files of openslr 11
download_dir=downloads
url_base=https://www.openslr.org/resources/11
md5_list=""             # a file of 'md5  name' lines (md5sum.txt format) replacing the sums below (a mirror)

. utils/parse_options.sh

log() {
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[0]##*/}:${BASH_LINENO[0]}) $*" >&2
}

# Official md5 sums (openslr.org/resources/11/md5sum.txt; the same values are pinned in other
# LibriSpeech downloaders, whose audio sums agree with local/data_prep.sh's).
declare -A md5=(
  [3-gram.arpa.gz]=74cbb837e582378c26c602e1c8cbcb9c
  [3-gram.pruned.1e-7.arpa.gz]=9a0f1325bcaf3a0f7b7be4be10823c2a
  [3-gram.pruned.3e-7.arpa.gz]=8f67ec741827742eee05799ab7605b50
  [4-gram.arpa.gz]=6abdcd5b055bd482e4f9defe91d40408
  [librispeech-lexicon.txt]=28f72663f6bfed7cd346283c064c315b
  [librispeech-vocab.txt]=bf3cc7a50112831ed8b0afa40cae96a5
  [librispeech-lm-norm.txt.gz]=c83c64c726a1aedfe65f80aa311de402
)
if [ -n "${md5_list}" ]; then
  while read -r sum name; do [ -n "${name:-}" ] && md5[${name}]=${sum}; done < "${md5_list}"
fi
for f in ${lm_files}; do
  if [ -z "${md5[$f]+set}" ]; then
    log "ERROR: unknown LibriSpeech LM file '${f}'; known: ${!md5[*]}"; exit 1
  fi
done

md5_of() {
  if command -v md5sum >/dev/null; then md5sum "$1" | awk '{print $1}'; else md5 -q "$1"; fi
}

mkdir -p "${download_dir}/lm"
for f in ${lm_files}; do
  out=${download_dir}/lm/${f}
  if [ -f "${out}.md5ok" ]; then
    log "${out} is downloaded and checked (.md5ok); skipping"; continue
  fi
  if [ -f "${out}" ] && [ "$(md5_of "${out}")" = "${md5[$f]}" ]; then  # complete (e.g. put there by hand)
    touch "${out}.md5ok"; log "${out} is complete (md5 matches); not downloading"; continue
  fi
  log "downloading ${url_base}/${f} to ${out} (resumable: rerun to continue)"
  utils/download.sh "${url_base}/${f}" "${out}" || {
    log "ERROR: downloading ${url_base}/${f} failed; rerun to resume, or put the file at ${out} yourself"; exit 1; }
  got=$(md5_of "${out}")
  if [ "${got}" != "${md5[$f]}" ]; then
    log "ERROR: ${out}: md5 ${got}, expected ${md5[$f]} (openslr 11 md5sum.txt); delete it and rerun"; exit 1
  fi
  touch "${out}.md5ok"
done
