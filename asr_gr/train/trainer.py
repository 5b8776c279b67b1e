"""The training loop: batches, SpecAugment, optimiser and schedule, validation, checkpoints, resume."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path

import torch
from torchaudio.functional import edit_distance
from tqdm import tqdm

from asr_gr.config import config_diff, dump, format_diff, load_yaml
from asr_gr.data.dataset import BucketSampler, FeatureDataset, MixedBucketSampler, collate
from asr_gr.device import autocast, explain_oom, resolve_precision
from asr_gr.features.cmvn import CMVN
from asr_gr.features.specaug import spec_augment
from asr_gr.inference import (UNTRANSCRIBED_SPK_LIST, classes_to_mask, greedy_decode, speaker_accuracy,
                              untranscribed_only_classes)
from asr_gr.lock import LOCK_NAME
from asr_gr.models.asr_model import build_model, complete_model_conf
from asr_gr.tb import TrainBoard
from asr_gr.text.tokenizer import load_tokenizer
from asr_gr.train.average import average_state_dicts, best_epochs
from asr_gr.train.checks import filter_unalignable, unalignable, validate_config
from asr_gr.train.curves import plot_curves, read_metrics
from asr_gr.train.distributed import DistInfo
from asr_gr.utils import ConfigError, TrainingError, atomic_path, atomic_write_text

log = logging.getLogger(__name__)

TRAIN_DEFAULTS = {
    "encoder": "conv_glu",
    "encoder_conf": {},
    "aux": "none",  # none | mtl | adversarial
    "aux_conf": {},  # spk_layer, spk_weight, spk_lambda, lambda_schedule, hidden, num_layers, dropout
    "utt_cmn": False,  # also remove each utterance's mean (after global CMVN), in training and decoding
    "specaug": {"num_freq_masks": 2, "freq_width": 15, "num_time_masks": 2, "time_width": 20},
    "optim": "adamw",  # adam | adamw
    "scheduler": "cosine",  # cosine (linear warm-up, cosine decay) | noam
    "lr": 3e-3,
    "weight_decay": 0.01,
    "warmup_steps": 200,
    "final_lr_ratio": 0.05,  # cosine decay to this fraction of lr at the last step
    "batch_frames": 20000,
    "max_epochs": 10,
    "grad_clip": 5.0,
    "seed": 1,
    "num_threads": 0,  # 0: torch's default
    "ngpu": 0,  # 0: CPU; 1: one GPU per process (several GPUs: launch with torchrun)
    "best_metric": "valid_cer",  # lower is better
    # semi-supervised: untranscribed batches per transcribed batch; null: each untranscribed batch once
    # per epoch (so every untranscribed utterance is seen about as often as a transcribed one)
    "untranscribed_ratio": None,
    "log_every_steps": 0,  # also log the step's stats to train.log every N steps (0: per epoch only)
    "nbest_average": 0,  # at the end, average the N best epochs into avg<N>.pt (0: off)
    "save_every_steps": 0,  # also checkpoint within an epoch every N batches (0: only at epoch ends)
    "max_bad_steps": 20,  # steps with a non-finite loss/gradient are skipped; stop after this many
    "ctc_unalignable": "skip",  # training utterances too short for their transcript: skip (warned) | error
    "precision": "fp32",  # fp32 | bf16 | fp16 | auto: autocast of the forward pass (fp16 with a gradient
    # scaler); auto = bf16 where the GPU/CPU computes it natively (AVX512-BF16, AMX), else fp32
    "num_workers": 0,  # DataLoader worker processes reading and normalising features (0: the main process)
    "pin_memory": True,  # page-locked batches for faster host-to-GPU copies (only when training on a GPU)
    "prefetch_factor": 2,  # batches each worker loads ahead (only with num_workers > 0)
}

# A GradScaler's scale at or below this is no longer "still calibrating": a non-finite gradient then
# counts as a bad step (see Trainer.train_epoch).
MIN_FP16_SCALE = 1.0

# Keys of config.yaml that a resumed run may change: how the run goes on, not what it computes (a
# longer max_epochs continues training; with the cosine schedule the rest of the lr curve stretches).
# Any other difference from the saved config.yaml stops a rerun (see Trainer.check_unchanged).
RESUMABLE_KEYS = ("max_epochs", "num_threads", "ngpu", "log_every_steps", "save_every_steps",
                  "nbest_average", "max_bad_steps", "num_workers", "pin_memory", "prefetch_factor")



def cosine_with_warmup(warmup: int, total: int, final_ratio: float):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        p = min(1.0, (step - warmup) / max(1, total - warmup))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * p))
    return f


def noam(warmup: int, d_model: int = 256):
    """The Transformer schedule: lr * min(step^-0.5, step * warmup^-1.5) * warmup^0.5 (peak = lr)."""
    def f(step: int) -> float:
        step = step + 1
        return min(step ** -0.5, step * warmup ** -1.5) * warmup ** 0.5
    return f


def make_optimizer(model, config: dict, total_steps: int):
    params = model.parameters()
    if config["optim"] == "adamw":
        optim = torch.optim.AdamW(params, lr=config["lr"], weight_decay=config["weight_decay"])
    elif config["optim"] == "adam":
        optim = torch.optim.Adam(params, lr=config["lr"], weight_decay=config["weight_decay"])
    else:
        raise ConfigError(f"optim: unknown optimiser '{config['optim']}'; known: adam, adamw")
    if config["scheduler"] == "cosine":
        fn = cosine_with_warmup(config["warmup_steps"], total_steps, config["final_lr_ratio"])
    elif config["scheduler"] == "noam":
        fn = noam(max(1, config["warmup_steps"]))
    else:
        raise ConfigError(f"scheduler: unknown schedule '{config['scheduler']}'; known: cosine, noam")
    return optim, torch.optim.lr_scheduler.LambdaLR(optim, fn)


def set_aside(exp_dir) -> Path | None:
    """Move what an exp dir holds to ``<parent>/.replaced/<name>.<UTC time>/`` (out of the way of
    RESULTS.md's ``exp/*/config.yaml`` and of the rerun, but kept); the dir itself and its ``.lock``,
    held by the caller, stay. Returns where it went, None if there was nothing to move."""
    exp = Path(exp_dir)
    entries = sorted(p for p in exp.iterdir() if p.name != LOCK_NAME) if exp.is_dir() else []
    if not entries:
        return None
    base = exp.parent / ".replaced" / f"{exp.name}.{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    dest, n = base, 1
    while dest.exists():
        dest, n = base.with_name(f"{base.name}~{n}"), n + 1
    dest.mkdir(parents=True)
    for p in entries:
        os.replace(p, dest / p.name)
    return dest


def load_checkpoint(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


class Trainer:
    def __init__(self, config: dict, exp_dir, *, train_dir, valid_dir, token_list, cmvn_path,
                 heldout_dir=None, untranscribed_dir=None, progress: bool = True):
        validate_config(config)
        # Every value the model is built with, class defaults included (saved in config.yaml).
        config, _ = complete_model_conf(config)
        self.config, self.exp = config, Path(exp_dir)
        self.data_paths = {"token_list": str(Path(token_list).resolve()), "cmvn": str(Path(cmvn_path).resolve())}
        self.dist = DistInfo.from_env(config["ngpu"])
        self.device = self.dist.device
        # the precision computed in (config "auto" is resolved for this machine: log, checkpoint, summary)
        self.precision, why = resolve_precision(config["precision"], self.device)
        if config["precision"] == "auto" and self.dist.is_main:
            log.info("precision %s (%s)", self.precision, why)
        self.progress = progress and self.dist.is_main
        self.exp.mkdir(parents=True, exist_ok=True)
        if config["num_threads"]:
            torch.set_num_threads(config["num_threads"])
        self.tokenizer = load_tokenizer(token_list)
        cmvn = CMVN.from_file(cmvn_path)
        # The model's input size is the features' (a CMVN file of another size is then named as the
        # culprit when the first utterance is normalised, not the features).
        self.input_dim = FeatureDataset.first_dim(train_dir) or cmvn.dim
        common = {"cmvn": cmvn, "input_dim": self.input_dim, "utt_cmn": config["utt_cmn"]}
        self.train_set = FeatureDataset(train_dir, encode=self.tokenizer.encode, **common)
        speakers = set(self.train_set.spk_label.values())
        untranscribed = None
        if untranscribed_dir is not None:
            if config["aux"] == "none":
                raise ConfigError("an untranscribed set adds only a speaker loss: it needs --aux mtl or "
                                  "adversarial, not none")
            untranscribed = FeatureDataset(untranscribed_dir, **common)
            speakers |= set(untranscribed.spk_label.values())
        # The classifier's classes: training speakers, plus those of the untranscribed set.
        self.spk2id = {s: i for i, s in enumerate(sorted(speakers))}
        # Classes that only the untranscribed set has: masked when scoring training speakers
        self.extra_classes = untranscribed_only_classes(self.spk2id, self.train_set.spk_label.values())
        self.train_set.spk2id = self.spk2id
        self.valid_set = FeatureDataset(valid_dir, encode=self.tokenizer.encode, **common)
        self.heldout_set = None
        if heldout_dir is not None and config["aux"] != "none":
            self.heldout_set = FeatureDataset(heldout_dir, spk2id=self.spk2id, unknown_spk="error", **common)

        torch.manual_seed(config["seed"])
        random.seed(config["seed"])
        self.model = build_model(config, self.input_dim, len(self.tokenizer), len(self.spk2id)).to(self.device)
        self.net = self.dist.wrap(self.model)  # DistributedDataParallel when launched by torchrun
        # CTC cannot align a transcript longer than its subsampled frames (F.ctc_loss's zero_infinity
        # would silently zero those losses): skip them with a warning, or stop (ctc_unalignable: error).
        self.skipped_unalignable = filter_unalignable(self.train_set, self.model.encoder,
                                                      config["ctc_unalignable"], train_dir)
        bad_valid = unalignable(self.model.encoder, self.valid_set.lengths,
                                [self.valid_set.targets[u] for u in self.valid_set.utts])
        if bad_valid:
            log.warning("%d of %d utterances of %s cannot be aligned by CTC (e.g. %s: %d tokens, %d frames); "
                        "they add 0 to valid_loss_ctc", len(bad_valid), len(self.valid_set), valid_dir,
                        self.valid_set.utts[bad_valid[0][0]], bad_valid[0][1], bad_valid[0][2])
        if untranscribed is not None:
            untranscribed.spk2id = self.spk2id
            self.batch_source = torch.utils.data.ConcatDataset([self.train_set, untranscribed])
            self.sampler = MixedBucketSampler(self.train_set.lengths, untranscribed.lengths,
                                              config["batch_frames"], config["untranscribed_ratio"],
                                              seed=config["seed"], rank=self.dist.rank,
                                              world_size=self.dist.world_size)
        else:
            self.batch_source = self.train_set
            self.sampler = BucketSampler(self.train_set.lengths, config["batch_frames"], seed=config["seed"],
                                         rank=self.dist.rank, world_size=self.dist.world_size)
        self.steps_per_epoch = self.sampler.batches_per_epoch
        self.total_steps = self.steps_per_epoch * config["max_epochs"]
        if config["warmup_steps"] >= self.total_steps and self.dist.is_main:
            log.warning("warmup_steps=%d is not shorter than the whole run (%d epochs x %d steps = %d "
                        "steps): the learning rate never reaches lr=%g; lower warmup_steps or raise "
                        "max_epochs", config["warmup_steps"], config["max_epochs"], self.steps_per_epoch,
                        self.total_steps, config["lr"])
        self.optim, self.sched = make_optimizer(self.model, config, self.total_steps)
        self.epoch, self.step, self.train_seconds = 0, 0, 0.0
        self.batch_in_epoch, self.epoch_sums, self.bad_steps = 0, {}, 0
        self.best = None
        self.gen = torch.Generator().manual_seed(config["seed"])
        # fp16 gradients underflow without loss scaling; for fp32/bf16 the scaler is a no-op.
        # The initial scale is 2^10, not torch's 2^16: CTC's gradients are large, and with 2^16 the
        # first dozen fp16 batches overflow and are dropped while the scale calibrates.
        self.scaler = torch.amp.GradScaler(self.device.type, init_scale=2.0 ** 10,
                                           enabled=self.precision == "fp16")
        self.pin = config["pin_memory"] and self.device.type == "cuda"
        self.data_wait = 0.0  # seconds the current epoch's loop waited for the loader
        self.board = TrainBoard(self.exp, enabled=False)  # TensorBoard, opened by run()
        self._config_checked = False

    # ---- files -------------------------------------------------------------------------------
    def resolved_config(self, extra: dict | None = None) -> dict:
        """The config as config.yaml records it: every training value and every constructor value of
        the encoder and head, plus what the data fixed (input_dim, vocab_size, num_speakers, the token
        list and CMVN files)."""
        return {**self.config, "input_dim": self.input_dim, "vocab_size": len(self.tokenizer),
                "num_speakers": len(self.spk2id), **self.data_paths, **(extra or {})}

    def check_unchanged(self, extra: dict | None = None) -> None:
        """Raise ConfigError (one line, naming each differing key as old -> new) if the exp dir holds a
        checkpoint trained with another resolved config: continuing it would silently train a mix of
        the two (or fail in load_state_dict). Keys in RESUMABLE_KEYS may differ. A config.yaml of an
        older version, which lacks class defaults or newer keys, is completed with today's defaults."""
        saved = self.exp / "config.yaml"
        has_checkpoint = any((self.exp / n).exists() for n in ("checkpoint.pt", "checkpoint.prev.pt"))
        if self._config_checked or not saved.exists() or not has_checkpoint:
            return
        old, filled = complete_model_conf(load_yaml(saved))
        missing = [k for k in TRAIN_DEFAULTS if k not in old]
        old.update({k: TRAIN_DEFAULTS[k] for k in missing})
        if filled or missing:
            log.info("%s lacks %s: compared with today's defaults", saved, ", ".join(filled + missing))
        diff = config_diff(old, self.resolved_config(extra), ignore=RESUMABLE_KEYS)
        if diff:
            raise ConfigError(f"{saved}: this exp dir was trained with another config ({format_diff(diff)}); "
                              "rerun with the same config to resume, or give a new --tag (--exp-dir), or "
                              "--force-restart (run.sh: --train-opts --force-restart) to move it aside and "
                              "start afresh")
        changed = config_diff(old, self.resolved_config(extra))
        if changed:
            log.info("resuming with changed %s", format_diff(changed))
        self._config_checked = True

    def write_setup(self, extra: dict | None = None) -> None:
        """config.yaml (resolved) and spk_list.txt: everything decoding needs to rebuild the model.
        Refuses (ConfigError) to overwrite the config of a checkpoint trained with another one."""
        self.check_unchanged(extra)
        if not self.dist.is_main:
            return
        resolved = self.resolved_config(extra)
        atomic_write_text(self.exp / "config.yaml", dump(resolved))
        atomic_write_text(self.exp / "spk_list.txt", "".join(s + "\n" for s in self.spk2id))
        extra = self.exp / UNTRANSCRIBED_SPK_LIST
        if self.extra_classes:
            names = list(self.spk2id)
            atomic_write_text(extra, "".join(names[i] + "\n" for i in self.extra_classes))
        else:
            extra.unlink(missing_ok=True)
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %s encoder, aux=%s, %.2fM parameters, %d speakers, %d tokens",
                 self.config["encoder"], self.config["aux"], n_params / 1e6, len(self.spk2id),
                 len(self.tokenizer))

    def save(self, *, epoch_end: bool) -> None:
        """Write checkpoint.pt atomically (the previous one is kept as checkpoint.prev.pt, used if the
        newest cannot be read); at the end of an epoch also epoch<N>.pt (model weights)."""
        state = {"model": self.model.state_dict(), "optim": self.optim.state_dict(),
                 "sched": self.sched.state_dict(), "epoch": self.epoch, "step": self.step,
                 "batch_in_epoch": self.batch_in_epoch, "epoch_sums": self.epoch_sums,
                 "bad_steps": self.bad_steps, "train_seconds": self.train_seconds, "best": self.best,
                 "torch_rng": torch.get_rng_state(), "gen_rng": self.gen.get_state(),
                 "precision": self.precision, "scaler": self.scaler.state_dict()}
        if not self.dist.is_main:
            return
        self.board.flush()  # TensorBoard holds every step up to the checkpoint
        if epoch_end:
            with atomic_path(self.exp / f"epoch{self.epoch}.pt") as tmp:
                torch.save(self.model.state_dict(), tmp)
        ckpt = self.exp / "checkpoint.pt"
        with atomic_path(ckpt) as tmp:
            torch.save(state, tmp)
            if ckpt.exists():
                os.replace(ckpt, self.exp / "checkpoint.prev.pt")

    def resume(self) -> bool:
        """Continue from checkpoint.pt (or checkpoint.prev.pt if the newest is unreadable)."""
        self.check_unchanged()
        state = None
        for name in ("checkpoint.pt", "checkpoint.prev.pt"):
            ckpt = self.exp / name
            if not ckpt.exists():
                continue
            try:
                state = load_checkpoint(ckpt)
                break
            except Exception as e:  # truncated or corrupt file: say so and fall back
                log.warning("%s cannot be loaded (%s); trying the previous checkpoint", ckpt,
                            str(e).splitlines()[0] if str(e) else type(e).__name__)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.sched.load_state_dict(state["sched"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.batch_in_epoch, self.epoch_sums = state["batch_in_epoch"], state["epoch_sums"]
        self.bad_steps = state["bad_steps"]
        self.train_seconds, self.best = state["train_seconds"], state["best"]
        torch.set_rng_state(state["torch_rng"])
        self.gen.set_state(state["gen_rng"])
        was = state.get("precision", "fp32")
        if was != self.precision:
            log.warning("%s was written with precision %s, training continues in %s", ckpt, was,
                        self.precision)
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])  # the fp16 loss scale and its growth counter
        log.info("resumed from %s: epoch %d, batch %d of the next epoch, step %d", ckpt, self.epoch,
                 self.batch_in_epoch, self.step)
        return True

    # ---- loops -------------------------------------------------------------------------------
    def loader(self, dataset, batch_sampler, **kw) -> torch.utils.data.DataLoader:
        """A DataLoader with the config's workers, prefetch and (on a GPU) pinned memory. Workers only
        read and normalise features (no randomness), so batches are identical for any num_workers."""
        n = self.config["num_workers"]
        extra = {"prefetch_factor": self.config["prefetch_factor"]} if n > 0 else {}
        return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate,
                                           num_workers=n, pin_memory=self.pin, **extra, **kw)

    def _timed(self, iterable):
        """Yield from ``iterable``, adding the time spent waiting for each item to ``self.data_wait``."""
        it = iter(iterable)
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            self.data_wait += time.perf_counter() - t
            yield item

    def train_epoch(self) -> dict:
        """Train the rest of the current epoch (all of it, unless resumed mid-epoch)."""
        self.net.train()
        self.sampler.set_epoch(self.epoch, start=self.batch_in_epoch)
        # A generator of its own, so creating the iterator draws nothing from the global RNG (which
        # drives dropout and is checkpointed): a resumed epoch then continues bit-exactly.
        loader = self.loader(self.batch_source, self.sampler, generator=torch.Generator())
        sums = self.epoch_sums
        t0 = time.time()
        t_epoch, self.data_wait = time.perf_counter(), 0.0
        bar = tqdm(self._timed(loader), desc=f"epoch {self.epoch + 1}/{self.config['max_epochs']}",
                   disable=not self.progress, unit="batch", leave=False, mininterval=2,
                   initial=self.batch_in_epoch, total=self.steps_per_epoch)
        spec = self.config["specaug"]
        every = self.config["save_every_steps"]
        for batch in bar:
            feats = batch["feats"]
            if spec:
                feats = spec_augment(feats, batch["feat_lens"], generator=self.gen, **spec)
            dev = {k: batch[k].to(self.device, non_blocking=self.pin) for k in ("feat_lens", "ys", "y_lens", "spk")}
            with explain_oom(self.config["batch_frames"], device=self.device):
                with autocast(self.device, self.precision):
                    loss, stats = self.net(feats.to(self.device, non_blocking=self.pin), dev["feat_lens"],
                                           dev["ys"], dev["y_lens"], dev["spk"],
                                           progress=self.step / max(1, self.total_steps))
                self.optim.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optim)  # (no-op unless fp16) clip the true gradient
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config["grad_clip"])
            self.batch_in_epoch += 1
            finite_loss = self.dist.all_true(bool(torch.isfinite(loss)))
            finite_grad = self.dist.all_true(bool(torch.isfinite(grad_norm)))
            if finite_loss and not finite_grad and self.scaler.is_enabled() and \
                    self.scaler.get_scale() > MIN_FP16_SCALE:
                # fp16 overflow while the loss scale is still being calibrated: the scaler halves its
                # scale and the batch is dropped, as torch.amp does; not a bad step
                self.scaler.step(self.optim)  # skips the update: it has seen the inf gradients
                self.scaler.update()
                self.optim.zero_grad(set_to_none=True)
                log.debug("fp16 overflow; loss scale now %g", self.scaler.get_scale())
            elif not (finite_loss and finite_grad):
                if self.scaler.is_enabled():
                    self.scaler.update()
                self.skip_bad_step(batch["utts"], loss, grad_norm)
            else:
                self.scaler.step(self.optim)  # optim.step() unless fp16 found inf gradients
                self.scaler.update()
                self.sched.step()
                self.step += 1
                for k, v in stats.items():  # [sum, count]: untranscribed batches have no loss_ctc
                    acc = sums.setdefault(k, [0.0, 0])
                    acc[0], acc[1] = acc[0] + v, acc[1] + 1
                bar.set_postfix(loss=f"{stats['loss']:.2f}")
                self.board.step(self.step, stats, self.sched.get_last_lr()[0])
                if self.config["log_every_steps"] and self.step % self.config["log_every_steps"] == 0:
                    log.info("step %d: %s lr=%.3g", self.step, " ".join(
                        f"{k}={v:.4g}" for k, v in stats.items() if not k.startswith("n_")),
                        self.sched.get_last_lr()[0])
            if every and self.batch_in_epoch % every == 0 and self.batch_in_epoch < self.steps_per_epoch:
                self.train_seconds += time.time() - t0
                t0 = time.time()
                self.save(epoch_end=False)
        self.train_seconds += time.time() - t0
        out = {f"train_{k}": v / n for k, (v, n) in sums.items() if not k.startswith("n_")}
        elapsed = time.perf_counter() - t_epoch
        out["data_wait"] = round(self.data_wait / max(elapsed, 1e-9), 4)  # fraction of the epoch's loop
        if self.device.type == "cuda" and out["data_wait"] > 0.2:
            log.warning("the GPU waited for data %.0f%% of the epoch: raise num_workers (now %d)",
                        100 * out["data_wait"], self.config["num_workers"])
        return out

    def skip_bad_step(self, utts, loss, grad_norm) -> None:
        self.bad_steps += 1
        self.optim.zero_grad(set_to_none=True)
        log.warning("step skipped: non-finite %s (loss %s, grad norm %s) on batch starting %s; %d skipped "
                    "so far", "loss" if not torch.isfinite(loss) else "gradient", float(loss.detach()),
                    float(grad_norm), utts[0], self.bad_steps)
        if self.bad_steps > self.config["max_bad_steps"]:
            raise TrainingError(f"{self.bad_steps} steps had a non-finite loss or gradient (max_bad_steps="
                                f"{self.config['max_bad_steps']}); lower lr or check the data near "
                                f"'{utts[0]}'")

    @torch.no_grad()
    def validate(self) -> dict:
        self.model.eval()
        out: dict[str, float] = {}
        refs, hyps, loss_sum, n = [], [], 0.0, 0
        loader = self.loader(self.valid_set, BucketSampler(self.valid_set.lengths, self.config["batch_frames"],
                                                           shuffle=False))
        for batch in loader:  # every rank validates the whole set: identical weights, identical results
            feats, feat_lens = batch["feats"].to(self.device), batch["feat_lens"].to(self.device)
            ys, y_lens = batch["ys"].to(self.device), batch["y_lens"].to(self.device)
            with explain_oom(self.config["batch_frames"], device=self.device), \
                    autocast(self.device, self.precision):
                lp, lens, _ = self.model.ctc_log_probs(feats, feat_lens)  # one encoder pass: loss and CER
            lp = lp.float()
            loss, _ = self.model.ctc_loss(lp, lens, ys, y_lens)
            loss_sum += float(loss) * len(batch["utts"])
            n += len(batch["utts"])
            for i, seq in enumerate(greedy_decode(lp, lens)):
                refs.append(self.tokenizer.decode(batch["ys"][i, : batch["y_lens"][i]]))
                hyps.append(self.tokenizer.decode(seq))
        out["valid_loss_ctc"] = loss_sum / max(1, n)
        errors = sum(edit_distance(list(r), list(h)) for r, h in zip(refs, hyps))
        out["valid_cer"] = 100.0 * errors / max(1, sum(len(r) for r in refs))
        word_errors = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
        out["valid_wer"] = 100.0 * word_errors / max(1, sum(len(r.split()) for r in refs))
        if self.heldout_set is not None:
            heldout = {self.spk2id[self.heldout_set.spk_label[u]] for u in self.heldout_set.utts}
            with explain_oom(self.config["batch_frames"], device=self.device), \
                    autocast(self.device, self.precision):
                masked, unmasked = speaker_accuracy(self.model, self.heldout_set, self.config["batch_frames"],
                                                    exclude=classes_to_mask(self.extra_classes, heldout))
            out["heldout_acc_spk"] = masked
            if self.extra_classes:
                out["heldout_acc_spk_all_classes"] = unmasked
        return out

    def run(self, resume: bool = True) -> dict:
        """Train to max_epochs, continuing the exp dir's checkpoint unless ``resume`` is False."""
        if resume:
            self.resume()
        self.board = TrainBoard(self.exp, self.step, enabled=self.dist.is_main)
        try:
            return self._run()
        finally:
            self.board.close()

    def _run(self) -> dict:
        if self.epoch >= self.config["max_epochs"]:
            log.info("training already finished (%d epochs); nothing to do", self.epoch)
        while self.epoch < self.config["max_epochs"]:
            stats = self.train_epoch()
            calibrating = (self.scaler.is_enabled() and self.bad_steps == 0
                           and self.scaler.get_scale() > MIN_FP16_SCALE
                           and self.epoch + 1 < self.config["max_epochs"])
            if self.step == 0 and calibrating:
                log.warning("epoch %d: every batch overflowed fp16 while the loss scale calibrated (now %g); "
                            "no update yet", self.epoch + 1, self.scaler.get_scale())
            elif self.step == 0:  # no update at all: the "model" is its random initialisation
                raise TrainingError(
                    f"epoch {self.epoch + 1}: none of {self.steps_per_epoch} steps could be taken ("
                    f"{self.bad_steps} non-finite loss or gradient"
                    + (f"; fp16 loss scale now {self.scaler.get_scale():g}" if self.scaler.is_enabled() else "")
                    + "); no checkpoint is written. Check the config's lr and aux_conf values, and the data")
            self.epoch += 1
            self.batch_in_epoch, self.epoch_sums = 0, {}
            stats.update(self.validate())
            stats.update(epoch=self.epoch, step=self.step, lr=self.sched.get_last_lr()[0],
                         train_seconds=round(self.train_seconds, 1))
            metric = stats[self.config["best_metric"]]
            improved = self.best is None or metric < self.best
            if improved:
                self.best = metric
                if self.dist.is_main:
                    with atomic_path(self.exp / "best.pt") as tmp:
                        torch.save(self.model.state_dict(), tmp)
            self.board.epoch(self.step, stats)  # before the checkpoint: a rerun after a kill rewrites it
            self.save(epoch_end=True)
            if not self.dist.is_main:
                continue
            with open(self.exp / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(stats) + "\n")
            plot_curves(self.exp / "metrics.jsonl", self.exp / "curves.png",
                        title=f"{self.exp.name} (aux={self.config['aux']})")
            log.info("epoch %d: %s%s", self.epoch,
                     " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items()
                              if k not in ("epoch",)), " (best)" if improved else "")
        self.dist.check_agree(self.model)
        summary = {"epochs": self.epoch, "steps": self.step, "train_seconds": round(self.train_seconds, 1),
                   "best_" + self.config["best_metric"]: self.best, "bad_steps": self.bad_steps,
                   "world_size": self.dist.world_size, "precision": self.precision}
        if not self.dist.is_main:
            return summary
        n = self.config["nbest_average"]
        if n:
            epochs = best_epochs(read_metrics(self.exp / "metrics.jsonl"), self.config["best_metric"], n)
            avg = average_state_dicts([load_checkpoint(self.exp / f"epoch{e}.pt") for e in epochs])
            with atomic_path(self.exp / f"avg{n}.pt") as tmp:
                torch.save(avg, tmp)
            summary[f"avg{n}_epochs"] = epochs
            log.info("averaged epochs %s into %s", epochs, self.exp / f"avg{n}.pt")
        atomic_write_text(self.exp / "train_summary.json", json.dumps(summary, indent=1) + "\n")
        return summary
