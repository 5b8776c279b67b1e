"""Build the token inventory from a Kaldi text file: characters, or sentencepiece BPE/unigram.

    python -m asr_gr.bin.tokenizer --text data/train/text --out data/token_list/char/tokens.txt
    python -m asr_gr.bin.tokenizer --text data/train/text --token-type bpe --vocab-size 300 \\
        --out data/token_list/bpe300/bpe.model
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.data.kaldi_dir import read_text_file
from asr_gr.text.tokenizer import CharTokenizer, build_char_list, train_sentencepiece
from asr_gr.utils import atomic_path


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", required=True, help="tokens.txt (char) or <name>.model (bpe, unigram)")
    ap.add_argument("--token-type", default="char", choices=["char", "bpe", "unigram"])
    ap.add_argument("--vocab-size", type=int, default=300)
    args = ap.parse_args(argv)
    texts = list(read_text_file(args.text).values())
    write_record(Path(args.out).parent, "asr_gr.bin.tokenizer", argv, args)
    if args.token_type == "char":
        tokens = build_char_list(texts)
        CharTokenizer(tokens).save(args.out)
        print(f"wrote {len(tokens)} tokens to {args.out}")
        return
    out = Path(args.out)
    if out.suffix != ".model":
        ap.error("--out must end in .model for sentencepiece")
    with atomic_path(out, suffix=".model") as tmp:
        # sentencepiece writes <prefix>.model (= tmp) and <prefix>.vocab (a readable piece list)
        train_sentencepiece(texts, tmp.with_suffix(""), args.vocab_size, args.token_type)
    if tmp.with_suffix(".vocab").exists():
        tmp.with_suffix(".vocab").replace(out.with_suffix(".vocab"))
    print(f"wrote a {args.token_type} model to {out}")


if __name__ == "__main__":
    main()
