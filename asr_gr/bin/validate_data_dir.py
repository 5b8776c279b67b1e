"""Check a Kaldi data dir as Kaldi's validate_data_dir.sh does; print one line per problem.

    python -m asr_gr.bin.validate_data_dir [--no-text] [--no-feats] DIR
"""

from __future__ import annotations

import argparse
import sys

from asr_gr.bin.common import main_guard
from asr_gr.data.kaldi_dir import validate_data_dir


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("--no-text", action="store_true", help="untranscribed set: no text file")
    ap.add_argument("--no-feats", action="store_true", default=True)
    ap.add_argument("--feats", dest="no_feats", action="store_false", help="require feats.scp")
    args = ap.parse_args(argv)
    errors = validate_data_dir(args.data_dir, no_text=args.no_text, no_feats=args.no_feats)
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"{args.data_dir}: OK")


if __name__ == "__main__":
    main()
