#!/usr/bin/env bash
# Kaldi data dirs data/{train,train_heldout,dev,test} for CMU AN4 (asr_gr/corpora/an4.py).
#
#   local/data_prep.sh                          # download an4_sphere.tar.gz into downloads/ if needed
#   local/data_prep.sh --an4-root /corpora/an4  # use an existing copy (the dir with etc/ and wav/)
#
# The download (64 MB) resumes where it stopped (wget -c / curl -C -); it is skipped when downloads/an4
# exists or --an4-root is given. dev holds whole training speakers (AN4 has no dev set).
set -euo pipefail

an4_root=""             # an existing AN4 copy; empty: downloads/an4 (downloaded when missing)
url=http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz  # where AN4 is downloaded from
download_dir=downloads  # where the tarball and the extracted copy go
dev_fraction=0.1        # fraction of training speakers held out (whole) as dev
seed=1                  # seed of the dev speaker draw

. utils/parse_options.sh

log() {
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[0]##*/}:${BASH_LINENO[0]}) $*" >&2
}

if [ -n "${an4_root}" ]; then
  if [ ! -d "${an4_root}" ]; then
    log "ERROR: --an4-root ${an4_root} does not exist"; exit 1
  fi
  log "using the AN4 copy in ${an4_root}"
elif [ -d "${download_dir}/an4" ]; then
  an4_root=${download_dir}/an4
  log "${an4_root} exists; not downloading"
else
  mkdir -p "${download_dir}"
  tarball=${download_dir}/$(basename "${url}")
  log "downloading ${url} to ${tarball} (resumable: rerun to continue)"
  utils/download.sh "${url}" "${tarball}" || {
    log "ERROR: downloading ${url} failed; rerun to resume, or download it yourself and pass --an4-root"; exit 1; }
  # Extract beside, then rename: downloads/an4 exists only once it is complete.
  tmp=${download_dir}/.an4_extract
  rm -rf "${tmp}" && mkdir -p "${tmp}"
  tar -xzf "${tarball}" -C "${tmp}"
  if [ ! -d "${tmp}/an4" ]; then
    log "ERROR: ${tarball} holds no an4/ directory; delete it and rerun"; exit 1
  fi
  mv "${tmp}/an4" "${download_dir}/an4" && rm -rf "${tmp}"
  an4_root=${download_dir}/an4
fi

python -m asr_gr.bin.prepare_an4 --an4-root "${an4_root}" --data data \
  --dev-fraction "${dev_fraction}" --seed "${seed}"
