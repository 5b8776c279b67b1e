"""Build the character token list from a Kaldi text file.

    python -m asr_gr.bin.tokenizer --text data/train/text --out data/token_list/char/tokens.txt
"""

from __future__ import annotations

import argparse

from asr_gr.bin.common import main_guard
from asr_gr.data.kaldi_dir import read_text_file
from asr_gr.text.tokenizer import CharTokenizer, build_char_list


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    tokens = build_char_list(read_text_file(args.text).values())
    CharTokenizer(tokens).save(args.out)
    print(f"wrote {len(tokens)} tokens to {args.out}")


if __name__ == "__main__":
    main()
