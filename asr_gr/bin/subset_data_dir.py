"""Copy a Kaldi data dir restricted to some utterances, as Kaldi's utils/subset_data_dir.sh does.

    python -m asr_gr.bin.subset_data_dir (--first N | --random N [--seed S] | --spk-list FILE
                                          | --utt-list FILE) SRC DST
"""

from __future__ import annotations

import argparse
import sys

from asr_gr.bin.common import main_guard
from asr_gr.data.ops import subset_data_dir


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sel = ap.add_mutually_exclusive_group(required=True)
    sel.add_argument("--first", type=int, metavar="N", help="the first N utterances (C order)")
    sel.add_argument("--random", type=int, metavar="N", help="N utterances drawn at random (see --seed)")
    sel.add_argument("--spk-list", metavar="FILE", help="every utterance of the speakers in FILE")
    sel.add_argument("--utt-list", metavar="FILE", help="the utterances in FILE (first field of a line)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --random (default 0)")
    ap.add_argument("src")
    ap.add_argument("dst")
    args = ap.parse_args(argv)
    notes: list[str] = []
    n = subset_data_dir(args.src, args.dst, first=args.first, random_n=args.random, seed=args.seed,
                        speakers=args.spk_list, utt_list=args.utt_list, notes=notes)
    for note in notes:
        print(f"subset_data_dir: {note}", file=sys.stderr)
    print(f"subset_data_dir: wrote {n} utterances to {args.dst}")


if __name__ == "__main__":
    main()
