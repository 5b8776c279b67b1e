"""Kaldi data dirs data/{train,train_heldout,dev,test,probe} from a copy of FSDD (free spoken digits).

    python -m asr_gr.bin.prepare_fsdd --fsdd-root downloads/free-spoken-digit-dataset-1.0.10 --data data

--fsdd-root is the directory holding recordings/ (or its parent). dev and test are one unseen speaker
each; train_heldout is the held-out takes (default 0-4, upstream's test split) of the other speakers;
probe is the held-out takes of every speaker (stage 6). See asr_gr/corpora/fsdd.py.
"""

from __future__ import annotations

import argparse
import logging

from asr_gr.bin.common import main_guard
from asr_gr.corpora.fsdd import DEV_SPEAKER, TEST_SPEAKER, parse_takes, prepare_fsdd
from asr_gr.record import write_record
from asr_gr.utils import setup_logging


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fsdd-root", required=True, help="the FSDD copy: the directory with recordings/")
    ap.add_argument("--data", required=True, help="parent of the Kaldi data dirs (train, dev, ...)")
    ap.add_argument("--test-speaker", default=TEST_SPEAKER,
                    help=f"the unseen speaker whose recordings form test (default {TEST_SPEAKER})")
    ap.add_argument("--dev-speaker", default=DEV_SPEAKER,
                    help=f"the unseen speaker whose recordings form dev (default {DEV_SPEAKER})")
    ap.add_argument("--heldout-takes", default="0-4",
                    help="takes of the training speakers held out as train_heldout (and, of every speaker, "
                         "as probe): numbers and ranges, e.g. '0-4' (default, upstream's test split) or '0,7'")
    ap.add_argument("--max-takes", type=int, default=None,
                    help="use only takes below N of every speaker and digit (a quick subset; default: all)")
    args = ap.parse_args(argv)
    setup_logging()
    summary = prepare_fsdd(args.fsdd_root, args.data, test_speaker=args.test_speaker,
                           dev_speaker=args.dev_speaker, heldout_takes=parse_takes(args.heldout_takes),
                           max_takes=args.max_takes)
    logging.info("FSDD data dirs written to %s", args.data)
    write_record(args.data, "asr_gr.bin.prepare_fsdd", argv, args)
    print(f"{'set':<15}{'speakers':>9}{'utts':>7}{'minutes':>9}  speakers")
    for name, row in summary.items():
        print(f"{name:<15}{row['speakers']:>9}{row['utterances']:>7}{row['minutes']:>9.2f}  "
              f"{' '.join(row['speaker_list'])}")


if __name__ == "__main__":
    main()
