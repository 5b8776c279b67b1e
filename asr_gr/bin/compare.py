"""Stage 7: compare systems on one decoded set, with significance (paired bootstrap).

    python -m asr_gr.bin.compare exp/A exp/B ... --set test --setup beam20_lm1_ws0 --out exp/compare.md \\
        [--num-samples 1000] [--seed 0] [--png exp/compare_per_spk.png] [--spk-list FILE]

Reads exp/<sys>/decode_<set>_<setup>/score/per_utt.json of every system (decode_<set> without --setup); writes the tables to --out and the
per-speaker WER bars to --png (default: compare_per_spk.png beside --out). --spk-list restricts the
comparison to the utterances of the speakers it lists (first column of each line, e.g. the test speakers
with one accent: ``awk '$3 == "en-029" {print $1}' speakers.tsv``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.bin.results import decode_dir
from asr_gr.score.significance import compare_systems, load_system, markdown, plot_per_spk, subset
from asr_gr.score.wer import check_comparable
from asr_gr.utils import DataError, atomic_write_text


def read_spk_list(path, known: set) -> list[str]:
    """Speaker ids of a list file (first column; blank lines and '#' comments skipped); an id the scored
    set does not have is an error naming the line."""
    p = Path(path)
    if not p.exists():
        raise DataError(p, None, "speaker list does not exist")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        spk = line.split()[0]
        if spk not in known:
            raise DataError(p, n, f"speaker '{spk}' has no utterance in the scored set")
        out.append(spk)
    if not out:
        raise DataError(p, None, "speaker list is empty")
    return out


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
    ap.add_argument("--spk-list", help="compare on these speakers' utterances only (one id per line, first column)")
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
    if args.spk_list:
        speakers = read_spk_list(args.spk_list, set(systems[0].spk))
        systems = [subset(x, speakers) for x in systems]
        extra = {}  # result.json's CER is the whole set's: not shown for a subset
    pairs = compare_systems(systems, args.num_samples, args.seed)
    quals = ([f"decoding setup `{args.setup}`"] if args.setup else []) + (
        [f"speakers of `{args.spk_list}`"] if args.spk_list else [])
    md = markdown(systems, pairs, test_set=args.set, num_samples=args.num_samples, extra=extra,
                  qualifier=", ".join(quals))
    out = Path(args.out)
    png = Path(args.png) if args.png else out.with_name(out.stem + "_per_spk.png")
    md += f"\n![per-speaker WER]({png.name})\n"
    atomic_write_text(out, md)
    plot_per_spk(systems, png)
    write_record(out.parent, "asr_gr.bin.compare", argv, args)
    print(md, end="")


if __name__ == "__main__":
    main()
