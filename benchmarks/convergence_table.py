"""The convergence ladder of RESULTS.md: test CER and WER of a sequence of runs, each with its 95 %
bootstrap interval, and what each step bought: the paired difference to the run it changes, with its
intervals over utterances and over speakers (1000 draws).

    python benchmarks/convergence_table.py NAME=SCORE_DIR[:BASE_NAME] ...

SCORE_DIR is a stage-5 score dir (per_utt.json) of the same test set for every run; BASE_NAME (default:
the run before it) is the run the step is measured against. Prints a markdown table.
"""

from __future__ import annotations

import sys

from asr_gr.score.significance import load_system, paired_bootstrap, wer_interval


def _fmt(ci) -> str:
    return "n/a" if ci is None else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    runs = []
    for i, arg in enumerate(argv):
        name, _, rest = arg.partition("=")
        score_dir, _, base = rest.partition(":")
        base = base or (runs[-1][0] if runs else None)
        runs.append((name, score_dir, base))
    systems = {name: {u: load_system(d, name, unit=u) for u in ("char", "word")} for name, d, _ in runs}
    print("| run | CER % [95% CI] | WER % [95% CI] | against | Δ CER [CI utt] [CI spk] | Δ WER [CI utt] [CI spk] |")
    print("|---|---|---|---|---|---|")
    for name, _, base in runs:
        cells = []
        for u in ("char", "word"):
            s = systems[name][u]
            lo, hi = wer_interval(s)
            cells.append(f"{s.wer:.2f} [{lo:.2f}, {hi:.2f}]")
        deltas = []
        if base is not None:
            for u in ("char", "word"):
                r = paired_bootstrap(systems[base][u], systems[name][u])
                deltas.append(f"{r.delta:+.2f} {_fmt(r.ci)} {_fmt(r.ci_spk)}")
        else:
            deltas = ["-", "-"]
        print(f"| {name} | {cells[0]} | {cells[1]} | {base or '-'} | {deltas[0]} | {deltas[1]} |")


if __name__ == "__main__":
    main()
