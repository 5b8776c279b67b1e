"""Stage 5: score hypotheses against references: WER/CER overall and per speaker (sclite-like).

    python -m asr_gr.bin.score --ref-dir dump/fbank/test --hyp exp/x/decode_test/hyp.txt \\
        --out-dir exp/x/decode_test/score [--lowercase] [--remove-punct] [--token-list tokens.txt]

Writes result.txt (normalisation, WER/CER[/TER], per-speaker tables), per_spk.txt, per_utt.txt
(REF/HYP/Eval alignments), per_utt.json (per-utterance error counts, read by asr_gr.bin.compare),
confusions.txt (top substitutions, deletions, insertions) and result.json. Speakers come from
utt2spkid, else utt2spk of --ref-dir.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.data.kaldi_dir import read_table, read_text_file, speaker_labels
from asr_gr.score.wer import missing_text, score, write_reports
from asr_gr.utils import DataError


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref-dir", required=True, help="data/dump dir with text and utt2spk")
    ap.add_argument("--hyp", required=True, help="hypotheses in Kaldi text format")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--lowercase", action="store_true", help="lower-case REF and HYP before scoring")
    ap.add_argument("--remove-punct", action="store_true", help="remove punctuation before scoring")
    ap.add_argument("--token-list", default=None,
                    help="tokens.txt or sentencepiece .model: also report the token error rate (TER)")
    args = ap.parse_args(argv)
    tokenize = None
    if args.token_list:
        from asr_gr.text.tokenizer import load_tokenizer
        tok = load_tokenizer(args.token_list)
        names = getattr(tok, "tokens", None)
        tokenize = (lambda t: [names[i] for i in tok.encode(t)]) if names else (lambda t: [str(i) for i in tok.encode(t)])
    refs = read_text_file(Path(args.ref_dir) / "text")
    if not refs:
        raise DataError(Path(args.ref_dir) / "text", None, "no utterances: there is nothing to score")
    hyps = read_table(args.hyp, allow_empty_value=True)
    if not hyps:
        raise DataError(args.hyp, None, f"no hypotheses (the {len(refs)} utterances of {args.ref_dir} were "
                        f"not decoded?)")
    extra = sorted(set(hyps) - set(refs))
    if extra:
        raise DataError(args.hyp, None, f"utterance '{extra[0]}' has no reference in {args.ref_dir}/text")
    utt2spk = speaker_labels(args.ref_dir, refs)
    rep = score(refs, hyps, utt2spk, lowercase=args.lowercase, remove_punct=args.remove_punct, tokenize=tokenize)
    if rep.missing:
        print(f"WARNING: {args.hyp}: {missing_text(rep.missing, len(refs))}", file=sys.stderr)
    summary = write_reports(rep, args.out_dir, title=f"hyp: {args.hyp}  ref: {Path(args.ref_dir) / 'text'}")
    write_record(args.out_dir, "asr_gr.bin.score", argv, args)
    print(f"%WER {summary['wer']:.2f}  %CER {summary['cer']:.2f}  ({summary['num_utts']} utterances, "
          f"{summary['num_spk']} speakers) -> {Path(args.out_dir) / 'result.txt'}")


if __name__ == "__main__":
    main()
