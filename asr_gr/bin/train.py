"""Stage 3: train a CTC model, optionally with a multi-task or adversarial speaker head.

    python -m asr_gr.bin.train --config conf/train.yaml --aux adversarial --exp-dir exp/train_adversarial \\
        --train-dir dump/fbank/train --valid-dir dump/fbank/dev --heldout-dir dump/fbank/train_heldout \\
        --token-list data/token_list/char/tokens.txt --cmvn dump/fbank/train/cmvn.ark \\
        [--set aux_conf.spk_lambda=0.3 ...]

Config precedence: built-in defaults < --config YAML < --aux/--set. The resolved config (every value,
class defaults of the encoder and head included) is saved as EXP/config.yaml. A rerun of the same
command resumes from EXP/checkpoint.pt; a rerun whose resolved config differs is an error naming the
keys, unless --force-restart moves the old exp dir aside (to EXP/../.replaced/) and starts afresh.
TensorBoard event files go to EXP/tensorboard/train/.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.config import resolve
from asr_gr.features.fbank import same_fbank_config
from asr_gr.inference import frontend_record, keep_cmvn
from asr_gr.lock import dir_lock
from asr_gr.train.checks import check_inputs, check_model_config, validate_config
from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer, set_aside
from asr_gr.utils import setup_logging


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML training config")
    ap.add_argument("--aux", choices=None, help="speaker head: none, mtl, adversarial (overrides the config)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value; dots for nested keys (aux_conf.spk_layer=2)")
    ap.add_argument("--exp-dir", required=True)
    ap.add_argument("--train-dir", required=True)
    ap.add_argument("--valid-dir", required=True)
    ap.add_argument("--heldout-dir", help="seen speakers' held-out utterances: speaker accuracy of the aux head")
    ap.add_argument("--untranscribed-dir", help="semi-supervised: a dump dir with utt2spk and no text; its "
                    "batches add only the speaker loss (needs --aux mtl or adversarial)")
    ap.add_argument("--token-list", required=True, help="tokens.txt (characters) or a sentencepiece .model")
    ap.add_argument("--cmvn", required=True, help="global CMVN stats (Kaldi cmvn.ark layout)")
    ap.add_argument("--ngpu", type=int, help="GPUs per process: 0 = CPU (default from the config); for "
                    "several GPUs or CPU workers launch with torchrun --nproc_per_node N")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--force-restart", action="store_true",
                    help="move an existing EXP aside (EXP/../.replaced/<name>.<time>) and train from scratch")
    args = ap.parse_args(argv)
    overrides = list(args.set)
    if args.aux is not None:
        overrides.append((["aux"], args.aux))
    if args.ngpu is not None:
        overrides.append((["ngpu"], args.ngpu))
    config = resolve(TRAIN_DEFAULTS, args.config, overrides)
    # Values checked for meaning, and the model built once on the meta device, before the exp dir exists.
    validate_config(config)
    check_model_config(config, check_inputs(args.cmvn, args.train_dir))
    exp = Path(args.exp_dir)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    with dir_lock(exp, "exp dir") if main_rank else contextlib.nullcontext():
        _train(args, config, exp, main_rank, argv)


def _train(args, config, exp, main_rank, argv):
    # Other ranks wait for rank 0 in the process-group rendezvous (Trainer), i.e. after the move;
    # the move keeps .lock, which this run holds.
    moved = set_aside(exp) if args.force_restart and main_rank else None
    setup_logging(exp / "train.log" if main_rank else None, logging.INFO if main_rank else logging.WARNING)
    if moved:
        logging.getLogger(__name__).info("--force-restart: moved the old %s to %s", exp, moved)
    trainer = Trainer(config, exp, train_dir=args.train_dir, valid_dir=args.valid_dir,
                      heldout_dir=args.heldout_dir, untranscribed_dir=args.untranscribed_dir,
                      token_list=args.token_list, cmvn_path=args.cmvn,
                      progress=not args.no_progress)
    cmvn = keep_cmvn(exp, args.cmvn) if main_rank else Path(args.cmvn)  # the exp dir's own copy
    paths = {"token_list": str(Path(args.token_list).resolve()), "cmvn": str(cmvn.resolve()),
             **frontend_record(same_fbank_config(args.train_dir, args.valid_dir, args.heldout_dir,
                                                 args.untranscribed_dir))}
    trainer.write_setup(paths)
    write_record(exp, "asr_gr.bin.train", argv, args, config=trainer.resolved_config(paths))
    summary = trainer.run(resume=not args.force_restart)
    trainer.dist.close()
    if not main_rank:
        return
    print(f"trained {summary['epochs']} epochs ({summary['steps']} steps) in {summary['train_seconds']:.0f} s; "
          f"exp dir {exp}")


if __name__ == "__main__":
    main()
