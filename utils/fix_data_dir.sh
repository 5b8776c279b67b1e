#!/usr/bin/env bash
# Make a Kaldi data dir consistent, as Kaldi's fix_data_dir.sh does: back up the tables to DIR/.backup/,
# sort every table in C order, keep only the utterances present in every table (and with a non-empty
# transcript), regenerate spk2utt from utt2spk, filter spk2gender to the remaining speakers.
# Prints "fix_data_dir: kept N of M utterances".
#   utils/fix_data_dir.sh DIR
exec python -m asr_gr.bin.fix_data_dir "$@"
