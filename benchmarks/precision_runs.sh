#!/usr/bin/env bash
# bf16 against fp32 on the default recipe: does bf16 keep mini_synth's accuracy, and how much time does it save?
#
#   benchmarks/precision_runs.sh [--seeds "1 2 3"] [--precisions "fp32 bf16"] [--aux none] [--out DIR]
#
# Makes the mini_synth corpus and features once (stages 1-2, all cores), then trains, decodes (greedy)
# and scores one system per (precision, seed) with exactly the recipe's config, every run pinned to 2
# cores of its own (taskset) and all of them at once. A machine with 2 x runs cores gives each run the
# 2 cores of the recipe's reference machine (memory bandwidth is shared, so a run alone is a little
# faster). Needs a CPU that computes bf16 natively (AVX512-BF16 or AMX): elsewhere PyTorch emulates
# bf16 many times slower and this script stops with that message.
#
# Writes <out>/summary.md (default out: egs/mini_synth/asr1/exp/precision): per run the test CER/WER with 95 % CIs, the training wall time and s/step;
# per precision the mean and s.d. over seeds. Exp dirs are egs/mini_synth/asr1/exp/prec_<precision>_s<seed>.
set -euo pipefail
root=$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seeds="1 2 3"
precisions="fp32 bf16"
aux=none
out=${root}/egs/mini_synth/asr1/exp/precision
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --precisions) precisions="$2"; shift 2 ;;
    --aux) aux="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "precision_runs.sh: unknown option $1" >&2; exit 1 ;;
  esac
done
mkdir -p "${out}"
out=$(cd "${out}" && pwd)

if [[ " ${precisions} " == *" bf16 "* ]] && ! grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
  echo "precision_runs.sh: this CPU has neither AVX512-BF16 nor AMX-BF16; bf16 would be emulated" >&2
  exit 2
fi
runs=()
for p in ${precisions}; do for s in ${seeds}; do runs+=("${p}:${s}"); done; done
ncpu=$(nproc)
if [ $(( 2 * ${#runs[@]} )) -gt "${ncpu}" ]; then
  echo "precision_runs.sh: ${#runs[@]} runs need $(( 2 * ${#runs[@]} )) cores, this machine has ${ncpu}" >&2
  exit 2
fi

cd "${root}/egs/mini_synth/asr1"
t0=$(date +%s)
./run.sh --stage 1 --stop-stage 2 --use-lm false --nj "${ncpu}" > "${out}/prep.log" 2>&1
echo "stages 1-2: $(( $(date +%s) - t0 )) s" | tee "${out}/times.txt"

i=0
pids=()
for r in "${runs[@]}"; do
  p=${r%%:*}; s=${r##*:}; tag=prec_${p}_s${s}
  (
    a=$(date +%s)
    taskset -c $(( 2 * i )),$(( 2 * i + 1 )) ./asr.sh --train-config conf/train.yaml --train-set train \
      --valid-set dev --test-sets test --heldout-set train_heldout --stage 3 --stop-stage 3 --aux "${aux}" \
      --tag "${tag}" --nj 2 --train-opts "--set precision=${p} --set seed=${s}" > "${out}/${tag}.train.log" 2>&1
    b=$(date +%s)
    taskset -c $(( 2 * i )),$(( 2 * i + 1 )) ./asr.sh --train-config conf/train.yaml --train-set train \
      --valid-set dev --test-sets test --heldout-set train_heldout --stage 4 --stop-stage 5 --aux "${aux}" \
      --tag "${tag}" --nj 2 --use-lm false > "${out}/${tag}.decode.log" 2>&1
    echo "${tag} train_s $(( b - a )) decode_s $(( $(date +%s) - b ))" >> "${out}/times.txt"
  ) &
  pids+=($!)
  i=$(( i + 1 ))
done
fail=0
for pid in "${pids[@]}"; do wait "${pid}" || fail=1; done
echo "all runs: $(( $(date +%s) - t0 )) s" >> "${out}/times.txt"
. ./path.sh
python "${root}/benchmarks/precision_summary.py" --exp exp --times "${out}/times.txt" --runs "${runs[@]}" \
  > "${out}/summary.md"
cat "${out}/summary.md"
exit ${fail}
