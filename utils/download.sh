#!/usr/bin/env bash
# Resumable download with wget or curl: rerun the same command to continue an interrupted transfer.
#   utils/download.sh URL FILE
set -euo pipefail
if [ $# -ne 2 ]; then echo "usage: $0 URL FILE" >&2; exit 1; fi
url=$1
out=$2
mkdir -p "$(dirname "${out}")"
if command -v wget >/dev/null; then
  exec wget -c -O "${out}" "${url}"
elif command -v curl >/dev/null; then
  exec curl -fL -C - -o "${out}" "${url}"
fi
echo "$0: neither wget nor curl is installed; cannot download ${url}" >&2
exit 1
