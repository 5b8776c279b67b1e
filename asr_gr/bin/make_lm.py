"""The LM stage: a word n-gram LM (ARPA, interpolated modified Kneser-Ney) and its decoding lexicon.

    python -m asr_gr.bin.make_lm --text data/train/text [--extra-text more.txt] --order 3 \\
        --token-list data/token_list/char/tokens.txt --out-dir data/lm
    python -m asr_gr.bin.make_lm --arpa downloads/lm/4-gram.arpa.gz \\
        --words downloads/lm/librispeech-lexicon.txt --token-list ... --out-dir data/lm

Writes OUT/lm.arpa (estimated from the transcripts of --text, a Kaldi text file, plus the sentences of
--extra-text, plain text one a line; with --arpa nothing is estimated and OUT/lm.arpa is not written:
the given file is the LM), OUT/lexicon.txt (every word of the LM vocabulary, or of --words, spelled in
the acoustic model's tokens; words the tokens cannot spell are left out and counted) and OUT/lm_info.json
(order, sizes, discounts, the words left out).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.lm.lexicon import arpa_vocabulary, build_lexicon, word_list, write_lexicon
from asr_gr.lm.ngram import KneserNeyLM, read_sentences
from asr_gr.text.tokenizer import load_tokenizer
from asr_gr.utils import DataError, atomic_write_text, setup_logging

log = logging.getLogger(__name__)


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", action="append", default=[], help="Kaldi text file(s) (utterance id first)")
    ap.add_argument("--extra-text", action="append", default=[], help="plain text file(s), a sentence a line")
    ap.add_argument("--order", type=int, default=3)
    ap.add_argument("--arpa", default=None, help="an existing ARPA (.gz) to use instead of estimating one")
    ap.add_argument("--words", default=None,
                    help="word list or lexicon (first field) for the decoding lexicon (default: the LM's words)")
    ap.add_argument("--token-list", required=True, help="tokens.txt or a sentencepiece .model")
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args(argv)
    setup_logging()
    out = Path(args.out_dir)
    tok = load_tokenizer(args.token_list)
    info = {}
    if args.arpa:
        if args.text or args.extra_text:
            raise DataError("command line", None, "give --arpa or --text/--extra-text, not both")
        arpa = Path(args.arpa)
        info["arpa"] = str(arpa)
    else:
        if not args.text and not args.extra_text:
            raise DataError("command line", None, "give --text and/or --extra-text (or --arpa)")
        if args.order < 2:
            raise DataError("command line", None, f"--order must be >= 2 (KenLM loads no unigram model), got {args.order}")
        sents = itertools.chain(*(read_sentences(t, kaldi_text=True) for t in args.text),
                                *(read_sentences(t, kaldi_text=False) for t in args.extra_text))
        lm = KneserNeyLM(sents, args.order)
        arpa = out / "lm.arpa"
        lm.write_arpa(arpa)
        for n, fb in enumerate(lm.fallback, 1):
            if fb:
                log.warning("order %d: count-of-counts too sparse for the Chen-Goodman discounts; using the "
                            "fallback %s", n, lm.discounts[n - 1])
        info.update(order=args.order, texts=args.text, extra_texts=args.extra_text, arpa=str(arpa),
                    ngrams=[len(a) for a in lm.adj], vocabulary=len(lm.vocab),
                    discounts=[[round(x, 6) for x in d] for d in lm.discounts], discount_fallback=lm.fallback)
    words = word_list(args.words) if args.words else arpa_vocabulary(arpa)
    entries, skipped = build_lexicon(words, tok)
    if not entries:
        raise DataError(args.words or arpa, None, f"no word can be spelled in the tokens of {args.token_list}")
    write_lexicon(entries, out / "lexicon.txt")
    info.update(lexicon=str(out / "lexicon.txt"), lexicon_words=len(entries), words_left_out=len(skipped),
                words_left_out_examples=skipped[:20], token_list=str(args.token_list))
    atomic_write_text(out / "lm_info.json", json.dumps(info, indent=1) + "\n")
    msg = f"{arpa}: " + (f"{args.order}-gram, n-grams {info['ngrams']}; " if "ngrams" in info else "")
    msg += f"lexicon {out / 'lexicon.txt'}: {len(entries)} words"
    if skipped:
        msg += f" ({len(skipped)} left out: characters not in the token list, e.g. {skipped[0]!r})"
    print(msg)


if __name__ == "__main__":
    main()
