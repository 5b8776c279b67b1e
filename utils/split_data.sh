#!/usr/bin/env bash
# Split a Kaldi data dir into NJ parts for parallel jobs, as Kaldi's split_data.sh does: DIR/split{NJ}/{1..NJ}/
# by speaker (a speaker never spans two jobs), or with --per-utt DIR/split{NJ}utt/{1..NJ}/ by utterance.
# Does nothing when the split is newer than every table of DIR.
#   utils/split_data.sh [--per-utt] DIR NJ
exec python -m asr_gr.bin.split_data "$@"
