"""Stage 2: fbank features of a data dir into a dump dir (feats.ark/scp, utt2num_frames + the data
dir's tables), and optionally global CMVN stats.

    python -m asr_gr.bin.compute_fbank --data-dir data/train --out-dir dump/fbank/train --cmvn
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.data.kaldi_dir import validate_data_dir
from asr_gr.features.cmvn import write_global_cmvn
from asr_gr.features.fbank import FbankConfig, compute_fbank_dir
from asr_gr.utils import setup_logging

COPIED = ("text", "utt2spk", "spk2utt", "spk2gender", "utt2spkid", "utt2dur")


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="Kaldi data dir with wav.scp")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--num-mel-bins", type=int, default=80)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--cmvn", action="store_true", help="also write global CMVN stats to OUT/cmvn.ark")
    ap.add_argument("--no-text", action="store_true", help="the set is untranscribed")
    args = ap.parse_args(argv)
    setup_logging()
    errors = validate_data_dir(args.data_dir, no_text=args.no_text)
    if errors:
        for e in errors:
            print(f"ERROR: {e}", file=sys.stderr)
        sys.exit(1)
    out = Path(args.out_dir)
    n = compute_fbank_dir(args.data_dir, out, FbankConfig(num_mel_bins=args.num_mel_bins,
                                                          sample_frequency=args.sample_rate))
    for name in COPIED:
        src = Path(args.data_dir) / name
        if src.exists():
            shutil.copyfile(src, out / name)
    if args.cmvn:
        write_global_cmvn(out / "feats.scp", out / "cmvn.ark")
    print(f"wrote features of {n} utterances to {out}")


if __name__ == "__main__":
    main()
