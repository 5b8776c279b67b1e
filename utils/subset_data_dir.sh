#!/usr/bin/env bash
# Copy a Kaldi data dir restricted to some utterances, every table kept consistent (with segments,
# wav.scp keeps only the recordings the chosen segments use), as Kaldi's subset_data_dir.sh does.
#   utils/subset_data_dir.sh --first N SRC DST          the first N utterances (C order)
#   utils/subset_data_dir.sh --random N [--seed S] SRC DST   N utterances at random
#   utils/subset_data_dir.sh --spk-list FILE SRC DST    every utterance of these speakers
#   utils/subset_data_dir.sh --utt-list FILE SRC DST    these utterances
exec python -m asr_gr.bin.subset_data_dir "$@"
