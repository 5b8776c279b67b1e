"""Make a Kaldi data dir consistent, as Kaldi's utils/fix_data_dir.sh does: back up the tables to
DIR/.backup/, sort them in C order, keep the utterances present in every table (and with a
transcript), regenerate spk2utt and filter the speaker tables.

    python -m asr_gr.bin.fix_data_dir DIR
"""

from __future__ import annotations

import argparse
import sys

from asr_gr.bin.common import main_guard
from asr_gr.data.ops import fix_data_dir


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    args = ap.parse_args(argv)
    reasons: list[str] = []
    kept, total = fix_data_dir(args.data_dir, reasons=reasons)
    for r in reasons:
        print(f"fix_data_dir: {args.data_dir}: {r}", file=sys.stderr)
    print(f"fix_data_dir: kept {kept} of {total} utterances")


if __name__ == "__main__":
    main()
