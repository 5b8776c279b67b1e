# Job backends of the recipe (Kaldi's and ESPnet's cmd.sh). asr.sh sources this file after reading its
# options; --cmd-backend local|slurm picks a block. Each variable runs a command as jobs, one log each:
#   ${decode_cmd} JOB=1:4 exp/x/decode_test/log/decode.JOB.log python -m asr_gr.bin.decode ... --part JOB
# train_cmd: features (stage 2) and CPU training (stage 3); cuda_cmd: GPU training (--ngpu N > 0);
# decode_cmd: decoding (stage 4) and probing (stage 6). Edit the slurm block for your cluster:
# generic options (--num-threads N, --mem 4G, --gpu N, --time 4:00:00) become sbatch flags through
# conf/slurm.conf.
cmd_backend=${cmd_backend:-local}
case "${cmd_backend}" in
  local)  # processes on this machine, at most --max-jobs-run N at once (default: the number of cores)
    train_cmd="utils/run.pl"
    decode_cmd="utils/run.pl"
    cuda_cmd="utils/run.pl"
    ;;
  slurm)  # one sbatch job array per call; Ctrl-C cancels it
    train_cmd="utils/slurm.pl --config conf/slurm.conf"
    decode_cmd="utils/slurm.pl --config conf/slurm.conf --mem 2G"
    cuda_cmd="utils/slurm.pl --config conf/slurm.conf --gpu 1"
    ;;
  *) echo "cmd.sh: --cmd-backend must be local or slurm, got '${cmd_backend}'" >&2; return 1 ;;
esac
