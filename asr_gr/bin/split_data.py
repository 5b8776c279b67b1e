"""Split a Kaldi data dir into NJ parts DIR/split{NJ}/{1..NJ}/ for parallel jobs, as Kaldi's
utils/split_data.sh does: by speaker (a speaker is never split across jobs), or with --per-utt by
utterance (into DIR/split{NJ}utt/). Nothing is rewritten when the split is newer than the data dir.

    python -m asr_gr.bin.split_data [--per-utt] DIR NJ
"""

from __future__ import annotations

import argparse

from asr_gr.bin.common import main_guard
from asr_gr.data.kaldi_dir import read_table
from asr_gr.data.ops import split_data, split_dir_name, split_is_up_to_date


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-utt", action="store_true", help="split by utterance (speakers may span jobs)")
    ap.add_argument("data_dir")
    ap.add_argument("nj", type=int)
    args = ap.parse_args(argv)
    by = "utterance" if args.per_utt else "speaker"
    root = split_dir_name(args.data_dir, args.nj, by)
    if split_is_up_to_date(args.data_dir, args.nj, by):
        print(f"split_data: {root} is up to date")
        return
    jobs = split_data(args.data_dir, args.nj, by=by)
    sizes = [len(read_table(j / "utt2spk")) for j in jobs]
    print(f"split_data: wrote {len(jobs)} jobs to {root} (utterances per job: {min(sizes)}-{max(sizes)})")


if __name__ == "__main__":
    main()
