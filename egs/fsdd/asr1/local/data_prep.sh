#!/usr/bin/env bash
# Kaldi data dirs data/{train,train_heldout,dev,test,probe} for FSDD, the free spoken digit dataset
# (asr_gr/corpora/fsdd.py).
#
#   local/data_prep.sh                            # download release v1.0.10 into downloads/ if needed
#   local/data_prep.sh --fsdd-root /corpora/fsdd  # use an existing copy (the dir with recordings/)
#   local/data_prep.sh --max-takes 4              # a quick subset: takes 0-3 of every speaker and digit
#
# The download (about 16 MB) resumes where it stopped (wget -c / curl -C -); it is skipped when
# downloads/free-spoken-digit-dataset-1.0.10 exists or --fsdd-root is given.
set -euo pipefail

fsdd_root=""            # an existing FSDD copy (the dir with recordings/); empty: downloads/ (downloaded when missing)
url=https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz  # release v1.0.10 (6 speakers)
download_dir=downloads  # where the tarball and the extracted copy go
test_speaker=theo       # the unseen speaker of test (USA/neutral accent, like the training speaker jackson)
dev_speaker=lucas       # the unseen speaker of dev (DEU/German accent, like the training speaker yweweler)
heldout_takes=0-4       # takes of the training speakers held out as train_heldout (of all speakers: probe);
                        # 0-4 is upstream's own test split
max_takes=""            # use only takes below N of every speaker and digit (a quick subset); empty: all 50

. utils/parse_options.sh

log() {
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[0]##*/}:${BASH_LINENO[0]}) $*" >&2
}

# The tarball unpacks to free-spoken-digit-dataset-<version without the v>/
extracted=${download_dir}/free-spoken-digit-dataset-$(basename "${url}" .tar.gz | sed 's/^v//')

if [ -n "${fsdd_root}" ]; then
  if [ ! -d "${fsdd_root}" ]; then
    log "ERROR: --fsdd-root ${fsdd_root} does not exist"; exit 1
  fi
  log "using the FSDD copy in ${fsdd_root}"
elif [ -d "${extracted}/recordings" ]; then
  fsdd_root=${extracted}
  log "${fsdd_root} exists; not downloading"
else
  mkdir -p "${download_dir}"
  tarball=${download_dir}/fsdd-$(basename "${url}")
  log "downloading ${url} to ${tarball} (resumable: rerun to continue)"
  utils/download.sh "${url}" "${tarball}" || {
    log "ERROR: downloading ${url} failed; rerun to resume, or download it yourself and pass --fsdd-root"; exit 1; }
  # Extract beside, then rename: the copy exists under downloads/ only once it is complete.
  tmp=${download_dir}/.fsdd_extract
  rm -rf "${tmp}" && mkdir -p "${tmp}"
  tar -xzf "${tarball}" -C "${tmp}"
  if [ ! -d "${tmp}/$(basename "${extracted}")/recordings" ]; then
    log "ERROR: ${tarball} holds no $(basename "${extracted}")/recordings/ directory; delete it and rerun"; exit 1
  fi
  mv "${tmp}/$(basename "${extracted}")" "${extracted}" && rm -rf "${tmp}"
  fsdd_root=${extracted}
fi

python -m asr_gr.bin.prepare_fsdd --fsdd-root "${fsdd_root}" --data data \
  --test-speaker "${test_speaker}" --dev-speaker "${dev_speaker}" --heldout-takes "${heldout_takes}" \
  ${max_takes:+--max-takes "${max_takes}"}
