"""Stage 5: score hypotheses against references: WER/CER overall and per speaker (sclite-like).

    python -m asr_gr.bin.score --ref-dir dump/fbank/test --hyp exp/x/decode_test/hyp.txt \\
        --out-dir exp/x/decode_test/score
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.data.kaldi_dir import read_table, read_text_file, speaker_labels
from asr_gr.score.wer import score, write_reports
from asr_gr.utils import DataError


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref-dir", required=True, help="data/dump dir with text and utt2spk")
    ap.add_argument("--hyp", required=True, help="hypotheses in Kaldi text format")
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args(argv)
    refs = read_text_file(Path(args.ref_dir) / "text")
    hyps = read_table(args.hyp, allow_empty_value=True)
    extra = sorted(set(hyps) - set(refs))
    if extra:
        raise DataError(args.hyp, None, f"utterance '{extra[0]}' has no reference in {args.ref_dir}/text")
    utt2spk = speaker_labels(args.ref_dir, refs)
    summary = write_reports(score(refs, hyps, utt2spk), args.out_dir,
                            title=f"hyp: {args.hyp}  ref: {Path(args.ref_dir) / 'text'}")
    print(f"%WER {summary['wer']:.2f}  %CER {summary['cer']:.2f}  ({summary['num_utts']} utterances, "
          f"{summary['num_spk']} speakers) -> {Path(args.out_dir) / 'result.txt'}")


if __name__ == "__main__":
    main()
