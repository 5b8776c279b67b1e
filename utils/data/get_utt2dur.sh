#!/usr/bin/env bash
# Write DIR/utt2dur ("utt seconds" per line), as Kaldi's utils/data/get_utt2dur.sh does: from segments
# (end - start) if there is one, else from the audio of wav.scp (file headers; pipes are run and their
# output read to the end; --read-entire-file true reads files to the end too), else from feats.scp
# ((frames + 1.5) * frame shift, the shift of DIR/frame_shift or --frame-shift). Nothing is done when
# utt2dur already lists exactly utt2spk's utterances. --nj reads that many entries at once; --cmd is
# accepted for Kaldi's command lines, but the reads run in this process.
#   utils/data/get_utt2dur.sh [--nj 4] [--cmd run.pl] [--read-entire-file false] [--frame-shift 0.01] DIR
exec python -m asr_gr.bin.data_utils utt2dur "$@"
