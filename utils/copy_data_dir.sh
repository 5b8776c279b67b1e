#!/usr/bin/env bash
# Copy a data dir, renaming utterances and speakers in every table, as Kaldi's utils/copy_data_dir.sh
# does: utterance u becomes <utt-prefix>u<utt-suffix> and speaker s <spk-prefix>s<spk-suffix> (in
# utt2spk, spk2utt, text, segments, feats.scp, utt2dur, spk2gender, cmvn.scp, ...); with segments,
# wav.scp is keyed by recording and copied unchanged. Renamed utterances get utt2uniq. The copy is
# then checked with utils/validate_data_dir.sh (--validate-opts are its options).
#   utils/copy_data_dir.sh [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S]
#                          [--validate-opts "--no-wav"] SRC DEST
exec python -m asr_gr.bin.data_utils copy "$@"
