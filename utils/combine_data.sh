#!/usr/bin/env bash
# Combine data dirs into one, as Kaldi's utils/combine_data.sh does: every table that all sources have
# is concatenated and sorted (utt2spk, text, wav.scp, segments, utt2dur, utt2num_frames, feats.scp,
# cmvn.scp, spk2gender, reco2file_and_channel, ... and the --extra-files); a table only some sources
# have is left out with a warning, except utt2uniq and segments, which are created where missing.
# A key that two sources give with different values is an error naming both lines. spk2utt is
# regenerated, then utils/fix_data_dir.sh runs unless --skip-fix true.
#   utils/combine_data.sh [--extra-files "file1 file2"] [--skip-fix true] DEST SRC1 SRC2 ...
exec python -m asr_gr.bin.data_utils combine "$@"
