"""Stage 7: compare systems on one decoded set, with significance (paired bootstrap).

    python -m asr_gr.bin.compare exp/A exp/B ... --set test --setup beam20_lm1_ws0 --out exp/compare.md \\
        [--num-samples 1000] [--seed 0] [--png exp/compare_per_spk.png]

Reads exp/<sys>/decode_<set>_<setup>/score/per_utt.json of every system (decode_<set> without --setup); writes the tables to --out and the
per-speaker WER bars to --png (default: compare_per_spk.png beside --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.bin.results import decode_dir
from asr_gr.score.significance import compare_systems, load_system, markdown, plot_per_spk
from asr_gr.score.wer import check_comparable
from asr_gr.utils import DataError, atomic_write_text


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exp_dirs", nargs="+", help="exp dirs of the systems (the first is the reference)")
    ap.add_argument("--set", default="test", help="decoded set: exp/<sys>/decode_<set>_<setup>/score")
    ap.add_argument("--setup", default="", help="decoding setup, e.g. greedy or beam20_lm1_ws0 ('': decode_<set>)")
    ap.add_argument("--out", default="exp/compare.md")
    ap.add_argument("--png", default=None)
    ap.add_argument("--num-samples", type=int, default=1000, help="bootstrap draws")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if len(args.exp_dirs) < 2:
        raise DataError("command line", None, "compare needs at least two exp dirs")
    systems, extra, scored = [], {}, {}
    for d in args.exp_dirs:
        sd = decode_dir(d, args.set, args.setup) / "score"
        name = Path(d).name
        systems.append(load_system(sd, name))
        res = sd / "result.json"
        if res.exists():
            extra[name] = json.loads(res.read_text(encoding="utf-8"))
            scored[name] = (res, extra[name])
    check_comparable(scored, "one comparison")
    pairs = compare_systems(systems, args.num_samples, args.seed)
    label = f"{args.set}` (decoding setup `{args.setup}" if args.setup else args.set
    md = markdown(systems, pairs, test_set=label, num_samples=args.num_samples, extra=extra)
    out = Path(args.out)
    png = Path(args.png) if args.png else out.with_name(out.stem + "_per_spk.png")
    md += f"\n![per-speaker WER]({png.name})\n"
    atomic_write_text(out, md)
    plot_per_spk(systems, png)
    write_record(out.parent, "asr_gr.bin.compare", argv, args)
    print(md, end="")


if __name__ == "__main__":
    main()
