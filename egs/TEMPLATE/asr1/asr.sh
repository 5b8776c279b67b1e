#!/usr/bin/env bash
# The stages every asr_gr recipe shares. A recipe's run.sh sets its corpus (data sets, local data
# preparation, configs) and calls this script; each stage calls one `python -m asr_gr.bin.<tool>`.
#
#   1  data prep      local/data_prep.sh                 -> data/<set>/ (Kaldi data dirs)
#   2  features       asr_gr.bin.compute_fbank           -> dump/fbank/<set>/ feats.{ark,scp} cmvn.ark
#                     asr_gr.bin.tokenizer               -> data/token_list/char/tokens.txt (or bpe<N>/bpe.model)
#                     asr_gr.bin.make_lm (--use-lm true) -> data/lm/<tokens>/lm.arpa lexicon.txt (word n-gram, modified KN)
#   3  training       asr_gr.bin.train                   -> exp/<tag>/ (one per --aux system)
#   4  decoding       asr_gr.bin.decode                  -> exp/<tag>/decode_<set>_<setup>/hyp.txt, setup e.g.
#                                                           greedy, beam20_lm1_ws0 (flashlight + KenLM)
#   5  scoring        asr_gr.bin.score, asr_gr.bin.results -> .../score/result.txt, exp/RESULTS.md
#   6  probing        asr_gr.bin.probe                   -> exp/<tag>/probe_<set>/probe.{tsv,png}, exp/probe_compare_<set>.{png,md}
#   7  comparison     asr_gr.bin.compare                 -> exp/compare.md, exp/compare_per_spk.png (paired bootstrap)
#
# Options ("--train-config conf/x.yaml" sets train_config; "./asr.sh --help" lists them with their
# defaults, i.e. the values this call would use; each is declared below, before parse_options.sh):
set -euo pipefail
# stopping this script (kill, Ctrl-C) stops the stage it runs, and that stage's jobs
. utils/supervise.sh "$@"

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

stage=1                 # first stage to run
stop_stage=5            # last stage to run
aux="none mtl adversarial"  # speaker head(s) to train: none, mtl, adversarial (space-separated list)
train_set=train         # transcribed training set
heldout_set=train_heldout  # seen speakers' held-out utterances (speaker accuracy); "" for none
valid_set=dev           # validation set (best checkpoint)
test_sets="dev test"    # sets decoded and scored in stages 4-5
extra_sets=""           # other sets to extract features for (e.g. untranscribed)
data_prep_opts=""       # options for local/data_prep.sh, as shell words (quote a value with spaces)
train_config=conf/train.yaml  # training config (YAML); --train-opts "--set key=value" overrides its values
train_opts=""           # extra options for asr_gr.bin.train, e.g. "--set aux_conf.spk_lambda=0.3"
probe_sets=""           # stage 6: sets probed, each on its own (exp/<tag>/probe_<set>); each set's utterances
                        # are split into probe-train/test utterances of the same speakers. Best: a set of
                        # speakers unseen in training with >= 10 utterances each; default: the heldout set
probe_opts=""           # extra options for asr_gr.bin.probe, e.g. "--num-nontarget 50000 --epochs 200"
untranscribed_set=""    # semi-supervised: a set with utt2spk and no text whose batches add only the speaker loss
tag=""                  # exp dir name; default <train_config name>_<aux>
checkpoint=best.pt      # checkpoint decoded in stage 4
use_lm=false            # true: stage 2 also makes a word n-gram LM + lexicon (data/lm/<tokens>/), stage 4 decodes with it
lm_order=3              # order of the estimated LM (interpolated modified Kneser-Ney, from the training transcripts)
lm_extra_text=""        # a plain text file (a sentence a line) added to the transcripts for the LM
lm_arpa=""              # an existing ARPA (.gz) to decode with instead of estimating one (e.g. LibriSpeech's)
lm_words=""             # word list/lexicon whose words the decoding lexicon spells (default: the LM's vocabulary)
beam_size=1             # stage 4: beam width; 1 without LM = CTC greedy
decoder=auto            # stage 4: auto (flashlight with the LM, else prefix), flashlight (lexicon + KenLM), prefix (own, lexicon-free)
lm_weight=0.5           # stage 4: weight of the natural-log word LM probability
word_score=0            # stage 4: score added per word
decode_greedy=true      # stage 4: also decode greedily (decode_<set>_greedy) beside a beam/LM setup
decode_opts=""          # extra options for asr_gr.bin.decode, e.g. "--batch-frames 20000"
score_opts=""           # extra options for asr_gr.bin.score, e.g. "--lowercase --remove-punct"
compare_opts=""         # extra options for asr_gr.bin.compare (stage 7), e.g. "--num-samples 2000"
nj=2                    # parallel jobs (torch threads in training and decoding)
train_jobs=auto         # stage 3: systems trained at once on the CPU, sharing --nj threads (1 thread each when
                        # more systems than --nj). auto: all the --aux systems, at most 2 per thread of --nj
                        # (2 cores: 3 systems at once, 1 thread each, train in 0.8x the time of one after
                        # another at 2 threads: README "Running on a Slurm cluster, or on one machine").
                        # Slurm: every system its own job with --nj threads; GPU/multi-node: one at a time
cmd_backend=local       # job backend of cmd.sh for stages 2, 3, 4, 6: local (processes here) or slurm (sbatch)
ngpu=""                 # training: 0 = CPU, 1 = GPU, N > 1 = N processes per node (torchrun; default: the config's ngpu)
num_nodes=1             # training: nodes of one DDP run (> 1: torchrun under srun; needs --cmd-backend slurm)
num_mel_bins=80         # fbank feature dimension (stage 2)
fs=""                   # sample rate of the features (Hz): stage 2 resamples every recording to it (torchaudio);
                        # "" = 16000, and a recording at another rate is an error naming it
token_type=char         # char, bpe or unigram (sentencepiece)
nbpe=300                # sentencepiece vocabulary size
feats_type=fbank        # fbank: extract from wav.scp; extracted: reuse data/<set>/feats.scp (+cmvn) made by Kaldi/ESPnet
speed_perturb_factors=""  # e.g. "0.9 1.0 1.1": train on speed-perturbed copies (sp<f>-<utt>), as ESPnet

. utils/parse_options.sh

[ -f path.sh ] && . ./path.sh
# train_cmd, decode_cmd, cuda_cmd: Kaldi's "${cmd} JOB=1:N log.JOB.log command" backends (cmd.sh)
if [ -f cmd.sh ]; then . ./cmd.sh; else train_cmd=utils/run.pl; decode_cmd=utils/run.pl; cuda_cmd=utils/run.pl; fi

conf_name=$(basename "${train_config}" .yaml)
if [ "${token_type}" = char ]; then
  token_list=data/token_list/char/tokens.txt
else
  token_list=data/token_list/${token_type}${nbpe}/${token_type}.model
fi
token_tag=${token_type}; [ "${token_type}" = char ] || token_tag=${token_type}${nbpe}
lm_dir=data/lm/${token_tag}
# Decoding setups of stage 4-5, each decoded into exp/<tag>/decode_<set>_<setup>: the main one from
# --beam-size/--use-lm/--lm-weight/--word-score/--decoder, and greedy beside it (--decode-greedy).
main_setup=greedy; main_opts="--beam-size 1"
if [ "${use_lm}" = true ]; then
  lm_file=${lm_arpa:-${lm_dir}/lm.arpa}
  main_setup=beam${beam_size}_lm${lm_weight}_ws${word_score}
  [ "${decoder}" = prefix ] && main_setup=${main_setup}_prefix
  main_opts="--beam-size ${beam_size} --lm ${lm_file} --lm-weight ${lm_weight} --word-score ${word_score} --decoder ${decoder}"
  [ "${decoder}" = prefix ] || main_opts="${main_opts} --lexicon ${lm_dir}/lexicon.txt"
elif [ "${beam_size}" -gt 1 ] || [ "${word_score}" != 0 ]; then
  main_setup=beam${beam_size}; [ "${word_score}" != 0 ] && main_setup=${main_setup}_ws${word_score}
  main_opts="--beam-size ${beam_size} --word-score ${word_score} --decoder prefix"
fi
setups="${main_setup}"
[ "${decode_greedy}" = true ] && [ "${main_setup}" != greedy ] && setups="greedy ${main_setup}"
setups_of() {  # the held-out set (speaker accuracy of the aux head) is decoded with the first setup only
  if [ "$1" = "${heldout_set}" ] && ! echo " ${test_sets} " | grep -q " $1 "; then echo ${setups%% *}; else echo ${setups}; fi
}
tag_for() {  # exp dir name of system $1: --tag, or <config>_<aux>[_semi]
  if [ -n "${tag}" ]; then echo "${tag}"; else echo "${conf_name}_$1${untranscribed_set:+_semi}"; fi
}
dump_done() {  # dump dir $1 of data dir $2 is done: .done newer than the data dir, every ark of feats.scp there
  [ -f $1/.done ] && [ -f $1/feats.scp ] && [ -z "$(find $2 -maxdepth 1 -type f -newer $1/.done)" ] || return 1
  local lost; lost=$(awk '{sub(/:[0-9]+$/, "", $2); print $2}' $1/feats.scp | sort -u |
    while read -r f; do [ -f "$f" ] || echo "$f"; done)
  [ -z "${lost}" ] && return 0
  log "$1/.done, but $(echo ${lost} | wc -w) ark(s) that feats.scp names are missing (e.g. ${lost%%$'\n'*}); redoing"
  return 1
}
[ -n "${probe_sets}" ] || probe_sets=${heldout_set}
feat_sets="${train_set} ${valid_set} ${test_sets} ${heldout_set} ${probe_sets} ${untranscribed_set} ${extra_sets}"
feat_sets=$(echo ${feat_sets} | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  log "stage 1: data preparation"
  eval "local/data_prep.sh ${data_prep_opts}"  # shell words: "--root '/my corpus'" stays one value
  for s in ${feat_sets}; do
    opts=""; [ -f data/${s}/text ] || opts="--no-text"
    python -m asr_gr.bin.validate_data_dir ${opts} data/${s}
  done
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  log "stage 2: features (--feats-type ${feats_type}) and the token list"
  case ${feats_type} in fbank|extracted) ;; *) log "ERROR: --feats-type must be fbank or extracted, got '${feats_type}'"; exit 1;; esac
  for s in ${feat_sets}; do
    sp=""; [ "${s}" = "${train_set}" ] && sp="${speed_perturb_factors}"
    stamp="${feats_type} fs=${fs:-16000} num_mel_bins=${num_mel_bins} speed_perturb=${sp}"
    # Done, unless the options (.done records them) or the data dir changed since (e.g. stage 1 was
    # rerun with other options) or an ark is gone.
    if [ "$(cat dump/fbank/${s}/.done 2>/dev/null)" = "${stamp}" ] && dump_done dump/fbank/${s} data/${s}; then
      log "dump/fbank/${s} is done; skipping"; continue
    fi
    if [ "${feats_type}" = extracted ]; then  # validate and reuse data/<set>/feats.scp; global cmvn.ark
      python -m asr_gr.bin.import_feats --data-dir data/${s} --out-dir dump/fbank/${s}
    else
      opts=""; [ "${s}" = "${train_set}" ] && opts="--cmvn"
      [ -f data/${s}/text ] || opts="${opts} --no-text"
      python -m asr_gr.bin.compute_fbank --data-dir data/${s} --out-dir dump/fbank/${s} --cmd "${train_cmd}" \
        --num-mel-bins ${num_mel_bins} --nj ${nj} ${opts} ${sp:+--speed-perturb "${sp}"} \
        ${fs:+--sample-rate ${fs} --resample true}
    fi
    echo "${stamp}" > dump/fbank/${s}/.done
  done
  python -m asr_gr.bin.tokenizer --text data/${train_set}/text --out ${token_list} \
    --token-type ${token_type} --vocab-size ${nbpe}
  if [ "${use_lm}" = true ]; then
    if [ -n "${lm_arpa}" ]; then
      log "stage 2: decoding lexicon of ${lm_arpa} in the tokens of ${token_list} -> ${lm_dir}"
      lm_src="--arpa ${lm_arpa}"
    else
      log "stage 2: word ${lm_order}-gram LM (modified Kneser-Ney) of data/${train_set}/text ${lm_extra_text} and its lexicon -> ${lm_dir}"
      lm_src="--text data/${train_set}/text --order ${lm_order} ${lm_extra_text:+--extra-text ${lm_extra_text}}"
    fi
    python -m asr_gr.bin.make_lm ${lm_src} ${lm_words:+--words ${lm_words}} --token-list ${token_list} --out-dir ${lm_dir}
  fi
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  # systems trained at once (par) and the torch threads of each: GPU and multi-node runs one at a time
  n_sys=$(echo ${aux} | wc -w); par=${train_jobs}; threads=${nj}
  case "${par}" in auto) par=$(( 2 * nj )) ;; *[!0-9]*|""|0) log "--train-jobs: expected auto or a number >= 1, got '${par}'"; exit 1 ;; esac
  [ "${cmd_backend}" = slurm ] && [ "${train_jobs}" = auto ] && par=${n_sys}
  { [ "${ngpu:-0}" -gt 0 ] || [ "${num_nodes}" -gt 1 ]; } && par=1
  [ "${par}" -gt "${n_sys}" ] && par=${n_sys}
  if [ "${par}" -gt 1 ] && [ "${cmd_backend}" != slurm ]; then
    threads=$(( nj / par )); [ "${threads}" -ge 1 ] || threads=1
    log "stage 3: training ${par} of the systems (${aux}) at once, ${threads} torch thread(s) each"
  fi
  train_pids=""
  train_wait() {  # return once fewer than $1 trainings run; a failed one stops the others and the script
    local p alive
    while :; do
      alive=""
      for p in ${train_pids}; do
        if kill -0 "${p}" 2>/dev/null; then alive="${alive} ${p}"; continue; fi
        wait "${p}" && continue
        log "stage 3: a training failed (its log is named above); stopping the others"
        for p in ${train_pids}; do kill "${p}" 2>/dev/null || true; done
        wait; exit 1
      done
      train_pids=${alive}
      [ "$(echo ${alive} | wc -w)" -lt "$1" ] && return
      sleep 1
    done
  }
  for a in ${aux}; do
    expdir=exp/$(tag_for ${a})
    log "stage 3: training --aux ${a} -> ${expdir} (log: ${expdir}/train.log)"
    heldout_opt=""; [ -n "${heldout_set}" ] && heldout_opt="--heldout-dir dump/fbank/${heldout_set}"
    [ -n "${untranscribed_set}" ] && heldout_opt="${heldout_opt} --untranscribed-dir dump/fbank/${untranscribed_set}"
    # through cuda_cmd (GPUs) or train_cmd; N GPUs or M nodes: torchrun (under srun on Slurm), one GPU each
    tcmd=${train_cmd}; launch="python -m"; ngpu_opt=${ngpu:+--ngpu ${ngpu}}
    [ "${ngpu:-0}" -gt 0 ] && tcmd="${cuda_cmd} --gpu ${ngpu}"
    if [ "${ngpu:-0}" -gt 1 ] || [ "${num_nodes}" -gt 1 ]; then
      [ "${num_nodes}" -gt 1 ] && tcmd="${tcmd} --num-nodes ${num_nodes}"
      nproc=${ngpu:-1}; [ "${nproc}" -gt 0 ] || nproc=1
      launch="python -m asr_gr.bin.torchrun --nproc-per-node ${nproc} --num-nodes ${num_nodes} --"
      ngpu_opt="--ngpu $([ "${ngpu:-0}" -gt 0 ] && echo 1 || echo 0)"
    fi
    # several at once: the first one's progress on the terminal, the others' only in their logs
    [ "${par}" -gt 1 ] && [ -n "${train_pids}" ] && tcmd="${tcmd} --echo false"
    cmd=(${tcmd} ${expdir}/log/train.log ${launch} asr_gr.bin.train --config ${train_config} --aux ${a} \
      --exp-dir ${expdir} --train-dir dump/fbank/${train_set} --valid-dir dump/fbank/${valid_set} ${heldout_opt} \
      --token-list ${token_list} --cmvn dump/fbank/${train_set}/cmvn.ark \
      --set num_threads=${threads} ${ngpu_opt} ${train_opts})
    if [ "${par}" -gt 1 ]; then
      train_wait "${par}"; "${cmd[@]}" & train_pids="${train_pids} $!"
    else
      "${cmd[@]}"
    fi
  done
  train_wait 1
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
  for a in ${aux}; do
    expdir=exp/$(tag_for ${a})
    # one process per system: the model loaded once, each set's forward pass shared by its setups
    tasks=""
    for s in ${test_sets} ${heldout_set}; do
      for setup in $(setups_of ${s}); do
        if [ "${setup}" = greedy ]; then task=--greedy-task; else task=--task; fi
        tasks="${tasks} ${task} dump/fbank/${s} ${expdir}/decode_${s}_${setup}"
      done
    done
    log "stage 4: decoding $(echo ${test_sets} ${heldout_set}) with ${expdir}/${checkpoint} (${setups}) -> ${expdir}/decode_<set>_<setup>"
    python -m asr_gr.bin.decode --exp-dir ${expdir} ${tasks} --checkpoint ${checkpoint} --num-threads ${nj} \
      --nj ${nj} --cmd "${decode_cmd}" ${main_opts} ${decode_opts}
  done
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  for a in ${aux}; do
    expdir=exp/$(tag_for ${a})
    for s in ${test_sets} ${heldout_set}; do
      for setup in $(setups_of ${s}); do
        d=${expdir}/decode_${s}_${setup}
        log "stage 5: scoring ${d}"
        python -m asr_gr.bin.score --ref-dir dump/fbank/${s} --hyp ${d}/hyp.txt --out-dir ${d}/score ${score_opts}
      done
    done
  done
  python -m asr_gr.bin.results --exp-root exp --test-set $(echo ${test_sets} | awk '{print $NF}') \
    ${heldout_set:+--heldout-set ${heldout_set}} --setups "${setups}"
fi
if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
  [ -n "${probe_sets}" ] || log "stage 6: no --probe-sets and no --heldout-set; nothing to probe"
  mkdir -p exp/log
  # the systems' list and logs are named by the systems, so that runs for other systems at the same
  # time (a parallel grid) keep their own: exp/log/probe_<set>.<tag>[+<tag>...].J.log
  sys_key=$(for a in ${aux}; do tag_for ${a}; done | paste -sd+ -)
  systems=exp/log/probe.${sys_key}.systems
  for a in ${aux}; do echo exp/$(tag_for ${a}); done > ${systems}
  for s in ${probe_sets}; do
    # one job of decode_cmd per system (JOB over the systems listed in ${systems})
    log "stage 6: speaker probing per layer on ${s} of $(echo $(cat ${systems})) -> <exp>/probe_${s} (logs: exp/log/probe_${s}.${sys_key}.*.log)"
    ${decode_cmd} JOB=1:$(wc -l < ${systems}) exp/log/probe_${s}.${sys_key}.JOB.log \
      python -m asr_gr.bin.probe --exp-dir "\$(sed -n JOBp ${systems})" --checkpoint ${checkpoint} \
      --data-dir dump/fbank/${s} ${probe_opts}
    if [ $(echo ${aux} | wc -w) -gt 1 ]; then
      python -m asr_gr.bin.probe --set ${s} --out exp/probe_compare_${s}.png \
        --compare $(for a in ${aux}; do echo exp/$(tag_for ${a}); done)
    fi
  done
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
  if [ $(echo ${aux} | wc -w) -gt 1 ]; then
    last_test=$(echo ${test_sets} | awk '{print $NF}')
    log "stage 7: comparing the systems of '${aux}' on ${last_test} (paired bootstrap) -> exp/compare.md"
    python -m asr_gr.bin.compare $(for a in ${aux}; do echo exp/$(tag_for ${a}); done) \
      --set ${last_test} --setup ${main_setup} --out exp/compare.md ${compare_opts}
  else
    log "stage 7: only one system (--aux ${aux}); nothing to compare"
  fi
fi

log "finished stages ${stage}-${stop_stage}"
