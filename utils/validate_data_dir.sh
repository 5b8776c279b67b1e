#!/usr/bin/env bash
# Check a Kaldi data dir as Kaldi's validate_data_dir.sh does (sorted C order, unique keys, the same
# utterances in every table, utt2spk/spk2utt agreement, no empty transcripts). One line per problem,
# "file:line: reason", and a non-zero exit status if there is any.
#   utils/validate_data_dir.sh [--no-text] [--feats] DIR
exec python -m asr_gr.bin.validate_data_dir "$@"
