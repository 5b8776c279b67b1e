#!/usr/bin/env bash
# The stages every asr_gr recipe shares. A recipe's run.sh sets its corpus (data sets, local data
# preparation, configs) and calls this script; each stage calls one `python -m asr_gr.bin.<tool>`.
#
#   1  data prep      local/data_prep.sh                 -> data/<set>/ (Kaldi data dirs)
#   2  features       asr_gr.bin.compute_fbank           -> dump/fbank/<set>/ feats.{ark,scp} cmvn.ark
#                     asr_gr.bin.tokenizer               -> data/token_list/char/tokens.txt (or bpe<N>/bpe.model)
#   3  training       asr_gr.bin.train                   -> exp/<tag>/ (one per --aux system)
#   4  decoding       asr_gr.bin.decode                  -> exp/<tag>/decode_<set>/hyp.txt
#   5  scoring        asr_gr.bin.score, asr_gr.bin.results -> .../score/result.txt, exp/RESULTS.md
#   6  probing        asr_gr.bin.probe                   -> exp/<tag>/probe/probe.{tsv,png}, exp/probe_compare.png
#   7  comparison     asr_gr.bin.compare                 -> exp/compare.md, exp/compare_per_spk.png (paired bootstrap)
#
# Options (set before parse_options.sh; "--train-config conf/x.yaml" sets train_config):
set -euo pipefail

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
train_config=conf/train.yaml
train_opts=""           # extra options for asr_gr.bin.train, e.g. "--set aux_conf.spk_lambda=0.3"
probe_sets=""           # stage 6: sets whose speakers the probes classify (split into probe-train/test
                        # utterances of the same speakers); default: the heldout set (seen speakers)
untranscribed_set=""    # semi-supervised: a set with utt2spk and no text whose batches add only the speaker loss
tag=""                  # exp dir name; default <train_config name>_<aux>
checkpoint=best.pt      # checkpoint decoded in stage 4
beam_size=1             # stage 4: 1 = CTC greedy, >1 = CTC prefix beam search
decode_opts=""          # extra options for asr_gr.bin.decode, e.g. "--lm lm.arpa --lm-weight 0.5 --word-bonus 1"
score_opts=""           # extra options for asr_gr.bin.score, e.g. "--lowercase --remove-punct"
compare_opts=""         # extra options for asr_gr.bin.compare (stage 7), e.g. "--num-samples 2000"
nj=2                    # parallel jobs (torch threads in training and decoding)
cmd_backend=local       # job backend of cmd.sh for stages 2, 3, 4, 6: local (processes here) or slurm (sbatch)
ngpu=""                 # training: 0 = CPU, 1 = GPU, N > 1 = N processes per node (torchrun; default: the config's ngpu)
num_nodes=1             # training: nodes of one DDP run (> 1: torchrun under srun; needs --cmd-backend slurm)
num_mel_bins=80
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
feat_sets="${train_set} ${valid_set} ${test_sets} ${heldout_set} ${untranscribed_set} ${extra_sets}"
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
    # Done, unless the data dir changed since (e.g. stage 1 was rerun with other options) or an ark is gone.
    if dump_done dump/fbank/${s} data/${s}; then
      log "dump/fbank/${s} is done; skipping"; continue
    fi
    if [ "${feats_type}" = extracted ]; then  # validate and reuse data/<set>/feats.scp; global cmvn.ark
      python -m asr_gr.bin.import_feats --data-dir data/${s} --out-dir dump/fbank/${s}
    else
      opts=""; [ "${s}" = "${train_set}" ] && opts="--cmvn"
      [ -f data/${s}/text ] || opts="${opts} --no-text"
      sp=""; [ "${s}" = "${train_set}" ] && sp="${speed_perturb_factors}"
      python -m asr_gr.bin.compute_fbank --data-dir data/${s} --out-dir dump/fbank/${s} --cmd "${train_cmd}" \
        --num-mel-bins ${num_mel_bins} --nj ${nj} ${opts} ${sp:+--speed-perturb "${sp}"}
    fi
    touch dump/fbank/${s}/.done
  done
  python -m asr_gr.bin.tokenizer --text data/${train_set}/text --out ${token_list} \
    --token-type ${token_type} --vocab-size ${nbpe}
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
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
    ${tcmd} ${expdir}/log/train.log ${launch} asr_gr.bin.train --config ${train_config} --aux ${a} --exp-dir ${expdir} \
      --train-dir dump/fbank/${train_set} --valid-dir dump/fbank/${valid_set} ${heldout_opt} \
      --token-list ${token_list} --cmvn dump/fbank/${train_set}/cmvn.ark \
      --set num_threads=${nj} ${ngpu_opt} ${train_opts}
  done
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
  for a in ${aux}; do
    expdir=exp/$(tag_for ${a})
    for s in ${test_sets} ${heldout_set}; do
      log "stage 4: decoding ${s} with ${expdir}/${checkpoint}"
      python -m asr_gr.bin.decode --exp-dir ${expdir} --data-dir dump/fbank/${s} \
        --out-dir ${expdir}/decode_${s} --checkpoint ${checkpoint} --num-threads ${nj} \
        --beam-size ${beam_size} --nj ${nj} --cmd "${decode_cmd}" ${decode_opts}
    done
  done
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  for a in ${aux}; do
    expdir=exp/$(tag_for ${a})
    for s in ${test_sets} ${heldout_set}; do
      log "stage 5: scoring ${expdir}/decode_${s}"
      python -m asr_gr.bin.score --ref-dir dump/fbank/${s} --hyp ${expdir}/decode_${s}/hyp.txt \
        --out-dir ${expdir}/decode_${s}/score ${score_opts}
    done
  done
  python -m asr_gr.bin.results --exp-root exp --test-set $(echo ${test_sets} | awk '{print $NF}') \
    ${heldout_set:+--heldout-set ${heldout_set}}
fi
if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
  probe_dirs=""
  [ -n "${probe_sets}" ] || probe_sets=${heldout_set}
  for s in ${probe_sets}; do probe_dirs="${probe_dirs} --data-dir dump/fbank/${s}"; done
  # one job of decode_cmd per system (JOB over the systems listed in exp/log/probe.systems)
  mkdir -p exp/log
  for a in ${aux}; do echo exp/$(tag_for ${a}); done > exp/log/probe.systems
  log "stage 6: speaker probing per layer on ${probe_sets} of $(echo $(cat exp/log/probe.systems)) (logs: exp/log/probe.*.log)"
  ${decode_cmd} JOB=1:$(wc -l < exp/log/probe.systems) exp/log/probe.JOB.log \
    python -m asr_gr.bin.probe --exp-dir '$(sed -n JOBp exp/log/probe.systems)' --checkpoint ${checkpoint} ${probe_dirs}
  if [ $(echo ${aux} | wc -w) -gt 1 ]; then
    python -m asr_gr.bin.probe --out exp/probe_compare.png --overlay $(for a in ${aux}; do echo exp/$(tag_for ${a}); done)
  fi
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
  if [ $(echo ${aux} | wc -w) -gt 1 ]; then
    last_test=$(echo ${test_sets} | awk '{print $NF}')
    log "stage 7: comparing the systems of '${aux}' on ${last_test} (paired bootstrap) -> exp/compare.md"
    python -m asr_gr.bin.compare $(for a in ${aux}; do echo exp/$(tag_for ${a}); done) \
      --set ${last_test} --out exp/compare.md ${compare_opts}
  else
    log "stage 7: only one system (--aux ${aux}); nothing to compare"
  fi
fi

log "finished stages ${stage}-${stop_stage}"
