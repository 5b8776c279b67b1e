"""Stage 2 for features made elsewhere: reuse a Kaldi/ESPnet data dir's feats.scp (plain or
compressed matrices) and CMVN stats instead of extracting fbank.

    python -m asr_gr.bin.import_feats --data-dir data/train --out-dir dump/fbank/train [--cmvn data/train/cmvn.scp]

Every utterance's matrix must load and all must have one dimension (else ``feats.scp:LINE:
dimension 40, expected 13``). Writes OUT/feats.scp (absolute paths; the arks stay where they are),
utt2num_frames, the data dir's text/utt2spk/spk2utt/..., and global CMVN stats OUT/cmvn.ark: from
--cmvn, else from the data dir's cmvn.scp (per speaker; also kept as OUT/cmvn.scp) or cmvn.ark,
else computed from the features. Relative paths in feats.scp/cmvn.scp are resolved against
--path-root (default: the working directory, then the data dir and its parents).
"""

from __future__ import annotations

import argparse

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.features.reuse import import_feats_dir
from asr_gr.lock import dir_lock
from asr_gr.utils import setup_logging


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="data dir with feats.scp")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--cmvn", help="CMVN stats: a global key-less cmvn.ark or a per-speaker cmvn.scp")
    ap.add_argument("--path-root", help="directory that relative paths in feats.scp are relative to")
    ap.add_argument("--dim", type=int, help="expected feature dimension (default: the first utterance's)")
    args = ap.parse_args(argv)
    setup_logging()
    with dir_lock(args.out_dir, "dump dir"):
        s = import_feats_dir(args.data_dir, args.out_dir, cmvn=args.cmvn, path_root=args.path_root, dim=args.dim)
        write_record(args.out_dir, "asr_gr.bin.import_feats", argv, args)
    print(f"imported {s['utts']} utterances ({s['frames']} frames, dim {s['dim']}) to {args.out_dir}; "
          f"CMVN: {s['cmvn']}")


if __name__ == "__main__":
    main()
