#!/usr/bin/env bash
# Speed-perturbed copy of a data dir, as Kaldi's utils/perturb_data_dir_speed.sh does: utterances,
# speakers (and, with segments, recordings) are renamed sp<factor>-<id>; each wav.scp entry becomes a
# pipe that plays the audio <factor> times as fast (Kaldi's is a sox pipe; this one runs
# "python -m asr_gr.bin.data_utils speed <factor> ...", which writes a WAV); utt2dur, reco2dur and
# segment times are divided by the factor; utt2uniq maps each new utterance to its original.
#   utils/perturb_data_dir_speed.sh [--utt-extra-files "f1 f2"] FACTOR SRC DEST
#   e.g. utils/perturb_data_dir_speed.sh 0.9 data/train data/train_sp0.9
exec python -m asr_gr.bin.data_utils perturb-speed "$@"
