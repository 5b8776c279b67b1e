"""Kaldi data dirs data/{train,train_heldout,dev,test} from a copy of the CMU AN4 corpus.

    python -m asr_gr.bin.prepare_an4 --an4-root downloads/an4 --data data

--an4-root is the directory holding etc/ and wav/ (or its parent). dev is a held-out set of whole
training speakers (AN4 has no dev set); train_heldout is one utterance of each remaining training
speaker with two or more. See asr_gr/corpora/an4.py.
"""

from __future__ import annotations

import argparse
import logging

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.corpora.an4 import prepare_an4
from asr_gr.utils import setup_logging


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--an4-root", required=True, help="the AN4 copy: the directory with etc/ and wav/")
    ap.add_argument("--data", required=True, help="parent of the Kaldi data dirs (train, dev, ...)")
    ap.add_argument("--dev-fraction", type=float, default=0.1,
                    help="fraction of training speakers whose utterances form dev (at least one; default 0.1)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the dev-speaker and held-out choice")
    ap.add_argument("--sph2pipe", default=None,
                    help="sph2pipe program for .sph files (default: the one on PATH; else libsndfile reads them)")
    args = ap.parse_args(argv)
    setup_logging()
    summary = prepare_an4(args.an4_root, args.data, dev_fraction=args.dev_fraction, seed=args.seed,
                          sph2pipe=args.sph2pipe)
    logging.info("AN4 data dirs written to %s", args.data)
    write_record(args.data, "asr_gr.bin.prepare_an4", argv, args)
    print(f"{'set':<15}{'speakers':>9}{'utts':>7}{'minutes':>9}")
    for name, row in summary.items():
        print(f"{name:<15}{row['speakers']:>9}{row['utterances']:>7}{row['minutes']:>9.2f}")


if __name__ == "__main__":
    main()
