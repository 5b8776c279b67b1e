"""CMVN statistics of a feats.scp in Kaldi's layout (2 x (dim+1) sums, squares and count).

    python -m asr_gr.bin.compute_cmvn --feats-scp dump/fbank/train/feats.scp --out dump/fbank/train/cmvn.ark
    python -m asr_gr.bin.compute_cmvn --feats-scp data/train/feats.scp --spk2utt data/train/spk2utt \\
        --out data/train/cmvn_spk.ark           # + data/train/cmvn_spk.scp (or --out-scp)

Without --spk2utt: one key-less global matrix (Kaldi: ``compute-cmvn-stats scp:feats.scp cmvn.ark``).
With it: per-speaker matrices keyed by speaker, ark + scp (Kaldi: ``compute-cmvn-stats
--spk2utt=ark:spk2utt scp:feats.scp ark,scp:cmvn.ark,cmvn.scp``), readable by kaldiio and Kaldi.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.features.cmvn import write_global_cmvn, write_spk_cmvn
from asr_gr.utils import setup_logging


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feats-scp", required=True)
    ap.add_argument("--spk2utt", help="per-speaker stats for the speakers of this spk2utt")
    ap.add_argument("--out", required=True, help="output ark (global: one key-less matrix)")
    ap.add_argument("--out-scp", help="with --spk2utt: the scp (default: --out with suffix .scp)")
    args = ap.parse_args(argv)
    setup_logging()
    write_record(Path(args.out).parent, "asr_gr.bin.compute_cmvn", argv, args)
    if args.spk2utt:
        stats = write_spk_cmvn(args.feats_scp, args.spk2utt, args.out, args.out_scp)
        scp = args.out_scp or Path(args.out).with_suffix(".scp")
        print(f"wrote CMVN stats of {len(stats)} speakers to {args.out} and {scp}")
    else:
        stats = write_global_cmvn(args.feats_scp, args.out)
        print(f"wrote global CMVN stats ({int(stats[0, -1])} frames, dim {stats.shape[1] - 1}) to {args.out}")


if __name__ == "__main__":
    main()
