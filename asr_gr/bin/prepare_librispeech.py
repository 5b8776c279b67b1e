"""Kaldi data dirs data/<part> (train_clean_100, dev_clean, ...) and data/train_heldout from an
extracted LibriSpeech copy.

    python -m asr_gr.bin.prepare_librispeech --root downloads --data data \\
        --parts "train-clean-100 dev-clean dev-other test-clean test-other" --untranscribed train-clean-360

--root holds LibriSpeech/SPEAKERS.TXT (or is the LibriSpeech directory itself). Part names take dashes or
underscores. utt2spk is the reader-chapter (Kaldi's CMVN speaker), utt2spkid the reader (the speaker
classifier's label). An --untranscribed part is made from its FLAC files; its trans.txt files are not
read. See asr_gr/corpora/librispeech.py.
"""

from __future__ import annotations

import argparse
import logging

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.corpora.librispeech import prepare_librispeech
from asr_gr.utils import die, setup_logging


def _names(values) -> list[str]:
    return [p for v in values or [] for p in v.replace(",", " ").split()]


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="directory holding LibriSpeech/ (or LibriSpeech/ itself)")
    ap.add_argument("--data", required=True, help="parent of the Kaldi data dirs")
    ap.add_argument("--parts", action="append", default=None,
                    help="parts to prepare, space/comma separated, repeatable (default: train-clean-100 "
                         "dev-clean dev-other test-clean test-other)")
    ap.add_argument("--untranscribed", action="append", default=None,
                    help="training parts to prepare without text (semi-supervised), from their FLAC files "
                         "(trans.txt not read), repeatable")
    ap.add_argument("--heldout-per-reader", type=int, default=2,
                    help="utterances of every transcribed training reader moved to the held-out set (default 2)")
    ap.add_argument("--heldout-set", default="train_heldout", help="name of the held-out data dir")
    ap.add_argument("--seed", type=int, default=1, help="seed of the held-out choice")
    ap.add_argument("--no-durations", action="store_true",
                    help="do not write utt2dur (skips reading every FLAC header)")
    args = ap.parse_args(argv)
    setup_logging()
    parts = _names(args.parts) or ["train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"]
    try:
        summary = prepare_librispeech(args.root, args.data, parts, untranscribed=_names(args.untranscribed),
                                      heldout_per_reader=args.heldout_per_reader,
                                      heldout_set=args.heldout_set, seed=args.seed,
                                      durations=not args.no_durations)
    except ValueError as e:
        if type(e) is not ValueError:
            raise
        die(str(e))
    logging.info("LibriSpeech data dirs written to %s", args.data)
    write_record(args.data, "asr_gr.bin.prepare_librispeech", argv, args)
    print(f"{'set':<18}{'readers':>8}{'spk':>7}{'utts':>8}{'hours':>8}  text")
    for name, row in summary.items():
        hours = f"{row['hours']:.2f}" if row["hours"] is not None else "-"
        print(f"{name:<18}{row['readers']:>8}{row['speakers']:>7}{row['utterances']:>8}{hours:>8}  "
              f"{'yes' if row['transcribed'] else 'no'}")


if __name__ == "__main__":
    main()
