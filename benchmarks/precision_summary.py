"""The table of benchmarks/precision_runs.sh: test CER/WER per (precision, seed) run, with intervals.

    python benchmarks/precision_summary.py --exp egs/mini_synth/asr1/exp --times exp_precision/times.txt \\
        --runs fp32:1 fp32:2 bf16:1 bf16:2

Per run: test-set CER and WER (greedy) with their 95 % bootstrap intervals over utterances, training
steps, stage 3's wall time and the trainer's seconds per step (metrics.jsonl: training only, no
validation). Per precision: mean and s.d. over seeds. Then the paired
comparison of each other precision with fp32 on seed-averaged errors (95 % CI over utterances, then over
speakers), for CER and WER.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from asr_gr.score.significance import load_system, paired_bootstrap, seed_average, wer_interval


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", required=True)
    ap.add_argument("--times", required=True)
    ap.add_argument("--runs", nargs="+", required=True, help="precision:seed")
    ap.add_argument("--set", default="test")
    args = ap.parse_args(argv)
    times = {}
    for line in Path(args.times).read_text().splitlines():
        f = line.split()
        if len(f) == 5 and f[1] == "train_s":
            times[f[0]] = (int(f[2]), int(f[4]))
    rows, by_prec = [], {}
    for r in args.runs:
        p, s = r.split(":")
        tag = f"prec_{p}_s{s}"
        sd = Path(args.exp) / tag / f"decode_{args.set}_greedy" / "score"
        if not (sd / "per_utt.json").exists():
            rows.append(f"| {p} | {s} | (no result: see {tag}.train.log / {tag}.decode.log) | | | | |")
            continue
        w = load_system(sd, tag)
        c = load_system(sd, tag, unit="char")
        last = json.loads((Path(args.exp) / tag / "metrics.jsonl").read_text().splitlines()[-1])
        steps, step_s = last["step"], last["train_seconds"] / last["step"]
        train_s, dec_s = times.get(tag, (float("nan"), float("nan")))
        by_prec.setdefault(p, []).append((w, c, steps, step_s))
        wl, wh = wer_interval(w)
        cl, ch = wer_interval(c)
        rows.append(f"| {p} | {s} | {c.wer:.2f} [{cl:.2f}, {ch:.2f}] | {w.wer:.2f} [{wl:.2f}, {wh:.2f}] | {steps} "
                    f"| {train_s} | {step_s:.3f} |")
    print(f"## bf16 against fp32: mini_synth, {args.set} set, greedy decoding\n")
    print("| precision | seed | CER % [95 % CI] | WER % [95 % CI] | steps | stage 3 wall s | s/step |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\n| precision | runs | CER mean ± s.d. | WER mean ± s.d. | s/step mean |")
    print("|---|---|---|---|---|")
    for p, rs in by_prec.items():
        cers = [c.wer for _, c, _, _ in rs]
        wers = [w.wer for w, _, _, _ in rs]
        sd = (lambda x: statistics.stdev(x) if len(x) > 1 else float("nan"))
        print(f"| {p} | {len(rs)} | {statistics.mean(cers):.2f} ± {sd(cers):.2f} | {statistics.mean(wers):.2f} ± "
              f"{sd(wers):.2f} | {statistics.mean(t for _, _, _, t in rs):.3f} |")
    if "fp32" in by_prec:
        print("\nPaired, seed-averaged errors, other − fp32 (95 % CI over utterances; over speakers):\n")
        print("| precision | Δ CER | Δ WER |")
        print("|---|---|---|")
        for p, rs in by_prec.items():
            if p == "fp32":
                continue
            cells = []
            for k in (1, 0):  # CER, WER
                a = seed_average([x[k] for x in by_prec["fp32"]], "fp32")
                b = seed_average([x[k] for x in rs], p)
                res = paired_bootstrap(a, b)
                cells.append(f"{res.delta:+.2f} [{res.ci[0]:+.2f}, {res.ci[1]:+.2f}] {res.spk_ci_text()}")
            print(f"| {p} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
