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

from asr_gr.config import dump
from asr_gr.data.dataset import BucketSampler, FeatureDataset, collate
from asr_gr.decode.ctc import greedy_decode
from asr_gr.features.cmvn import CMVN
from asr_gr.features.specaug import spec_augment
from asr_gr.models.asr_model import build_model
from asr_gr.text.tokenizer import CharTokenizer
from asr_gr.train.curves import plot_curves
from asr_gr.utils import TrainingError, atomic_path, atomic_write_text

log = logging.getLogger(__name__)

TRAIN_DEFAULTS = {
    "encoder": "conv_glu",
    "encoder_conf": {},
    "aux": "none",  # none | mtl | adversarial
    "aux_conf": {},  # spk_layer, spk_weight, spk_lambda, lambda_schedule, hidden, num_layers, dropout
    "utt_cmn": False,  # also remove each utterance's mean (after global CMVN), in training and decoding
    "specaug": {"num_freq_masks": 2, "freq_width": 15, "num_time_masks": 2, "time_width": 20},
    "lr": 3e-3,
    "weight_decay": 0.01,
    "warmup_steps": 200,
    "final_lr_ratio": 0.05,  # cosine decay to this fraction of lr at the last step
    "batch_frames": 20000,
    "max_epochs": 10,
    "grad_clip": 5.0,
    "seed": 1,
    "num_threads": 0,  # 0: torch's default
    "best_metric": "valid_cer",  # lower is better
    "save_every_steps": 0,  # also checkpoint within an epoch every N batches (0: only at epoch ends)
    "max_bad_steps": 20,  # steps with a non-finite loss/gradient are skipped; stop after this many
}



def cosine_with_warmup(warmup: int, total: int, final_ratio: float):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        p = min(1.0, (step - warmup) / max(1, total - warmup))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * p))
    return f


def load_checkpoint(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


class Trainer:
    def __init__(self, config: dict, exp_dir, *, train_dir, valid_dir, token_list, cmvn_path,
                 heldout_dir=None, progress: bool = True):
        self.config, self.exp = config, Path(exp_dir)
        self.progress = progress
        self.exp.mkdir(parents=True, exist_ok=True)
        if config["num_threads"]:
            torch.set_num_threads(config["num_threads"])
        self.tokenizer = CharTokenizer.from_file(token_list)
        cmvn = CMVN.from_file(cmvn_path)
        self.input_dim = cmvn.dim
        common = {"cmvn": cmvn, "input_dim": cmvn.dim, "utt_cmn": config["utt_cmn"]}
        self.train_set = FeatureDataset(train_dir, encode=self.tokenizer.encode, **common)
        speakers = sorted(set(self.train_set.spk_label.values()))
        self.spk2id = {s: i for i, s in enumerate(speakers)}
        self.train_set.spk2id = self.spk2id
        self.valid_set = FeatureDataset(valid_dir, encode=self.tokenizer.encode, **common)
        self.heldout_set = None
        if heldout_dir is not None and config["aux"] != "none":
            self.heldout_set = FeatureDataset(heldout_dir, spk2id=self.spk2id, unknown_spk="error", **common)

        torch.manual_seed(config["seed"])
        random.seed(config["seed"])
        self.model = build_model(config, self.input_dim, len(self.tokenizer), len(speakers))
        self.sampler = BucketSampler(self.train_set.lengths, config["batch_frames"], seed=config["seed"])
        self.steps_per_epoch = len(self.sampler.batches)
        self.total_steps = self.steps_per_epoch * config["max_epochs"]
        self.optim = torch.optim.AdamW(self.model.parameters(), lr=config["lr"],
                                       weight_decay=config["weight_decay"])
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.optim, cosine_with_warmup(config["warmup_steps"], self.total_steps, config["final_lr_ratio"]))
        self.epoch, self.step, self.train_seconds = 0, 0, 0.0
        self.batch_in_epoch, self.epoch_sums, self.bad_steps = 0, {}, 0
        self.best = None
        self.gen = torch.Generator().manual_seed(config["seed"])

    # ---- files -------------------------------------------------------------------------------
    def write_setup(self, extra: dict) -> None:
        """config.yaml (resolved) and spk_list.txt: everything decoding needs to rebuild the model."""
        resolved = dict(self.config, input_dim=self.input_dim, vocab_size=len(self.tokenizer),
                        num_speakers=len(self.spk2id), **extra)
        atomic_write_text(self.exp / "config.yaml", dump(resolved))
        atomic_write_text(self.exp / "spk_list.txt", "".join(s + "\n" for s in self.spk2id))
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
                 "torch_rng": torch.get_rng_state(), "gen_rng": self.gen.get_state()}
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
        log.info("resumed from %s: epoch %d, batch %d of the next epoch, step %d", ckpt, self.epoch,
                 self.batch_in_epoch, self.step)
        return True

    # ---- loops -------------------------------------------------------------------------------
    def train_epoch(self) -> dict:
        """Train the rest of the current epoch (all of it, unless resumed mid-epoch)."""
        self.model.train()
        self.sampler.set_epoch(self.epoch, start=self.batch_in_epoch)
        # A generator of its own, so creating the iterator draws nothing from the global RNG (which
        # drives dropout and is checkpointed): a resumed epoch then continues bit-exactly.
        loader = torch.utils.data.DataLoader(self.train_set, batch_sampler=self.sampler, collate_fn=collate,
                                             generator=torch.Generator())
        sums = self.epoch_sums
        t0 = time.time()
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{self.config['max_epochs']}",
                   disable=not self.progress, unit="batch", leave=False, mininterval=2,
                   initial=self.batch_in_epoch, total=self.steps_per_epoch)
        spec = self.config["specaug"]
        every = self.config["save_every_steps"]
        for batch in bar:
            feats = batch["feats"]
            if spec:
                feats = spec_augment(feats, batch["feat_lens"], generator=self.gen, **spec)
            loss, stats = self.model(feats, batch["feat_lens"], batch["ys"], batch["y_lens"], batch["spk"],
                                     progress=self.step / max(1, self.total_steps))
            self.optim.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config["grad_clip"])
            self.batch_in_epoch += 1
            if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
                self.skip_bad_step(batch["utts"], loss, grad_norm)
            else:
                self.optim.step()
                self.sched.step()
                self.step += 1
                sums["n"] = sums.get("n", 0) + 1
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.set_postfix(loss=f"{stats['loss']:.2f}")
            if every and self.batch_in_epoch % every == 0 and self.batch_in_epoch < self.steps_per_epoch:
                self.train_seconds += time.time() - t0
                t0 = time.time()
                self.save(epoch_end=False)
        self.train_seconds += time.time() - t0
        n = max(1, sums.get("n", 0))
        return {f"train_{k}": v / n for k, v in sums.items() if k != "n" and not k.startswith("n_")}

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
        loader = torch.utils.data.DataLoader(
            self.valid_set, batch_sampler=BucketSampler(self.valid_set.lengths, self.config["batch_frames"],
                                                        shuffle=False), collate_fn=collate)
        for batch in loader:
            loss, stats = self.model(batch["feats"], batch["feat_lens"], batch["ys"], batch["y_lens"],
                                     torch.full_like(batch["spk"], -1))
            loss_sum += stats["loss_ctc"] * len(batch["utts"])
            n += len(batch["utts"])
            lp, lens, _ = self.model.ctc_log_probs(batch["feats"], batch["feat_lens"])
            for i, seq in enumerate(greedy_decode(lp, lens)):
                refs.append(self.tokenizer.decode(batch["ys"][i, : batch["y_lens"][i]]))
                hyps.append(self.tokenizer.decode(seq))
        out["valid_loss_ctc"] = loss_sum / max(1, n)
        errors = sum(edit_distance(list(r), list(h)) for r, h in zip(refs, hyps))
        out["valid_cer"] = 100.0 * errors / max(1, sum(len(r) for r in refs))
        if self.heldout_set is not None:
            out["heldout_acc_spk"] = speaker_accuracy(self.model, self.heldout_set, self.config["batch_frames"])
        return out

    def run(self) -> dict:
        self.resume()
        if self.epoch >= self.config["max_epochs"]:
            log.info("training already finished (%d epochs); nothing to do", self.epoch)
        while self.epoch < self.config["max_epochs"]:
            stats = self.train_epoch()
            self.epoch += 1
            self.batch_in_epoch, self.epoch_sums = 0, {}
            stats.update(self.validate())
            stats.update(epoch=self.epoch, step=self.step, lr=self.sched.get_last_lr()[0],
                         train_seconds=round(self.train_seconds, 1))
            metric = stats[self.config["best_metric"]]
            improved = self.best is None or metric < self.best
            if improved:
                self.best = metric
                with atomic_path(self.exp / "best.pt") as tmp:
                    torch.save(self.model.state_dict(), tmp)
            self.save(epoch_end=True)
            with open(self.exp / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(stats) + "\n")
            plot_curves(self.exp / "metrics.jsonl", self.exp / "curves.png",
                        title=f"{self.exp.name} (aux={self.config['aux']})")
            log.info("epoch %d: %s%s", self.epoch,
                     " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items()
                              if k not in ("epoch",)), " (best)" if improved else "")
        summary = {"epochs": self.epoch, "steps": self.step, "train_seconds": round(self.train_seconds, 1),
                   "best_" + self.config["best_metric"]: self.best}
        atomic_write_text(self.exp / "train_summary.json", json.dumps(summary, indent=1) + "\n")
        return summary


@torch.no_grad()
def speaker_accuracy(model, dataset: FeatureDataset, batch_frames: int) -> float:
    """Accuracy of the model's aux speaker head on ``dataset`` (whose speakers it was trained on)."""
    model.eval()
    head = model.aux_head
    correct = total = 0
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=BucketSampler(dataset.lengths, batch_frames, shuffle=False), collate_fn=collate)
    for batch in loader:
        _, lens, layers = model.encoder(batch["feats"], batch["feat_lens"])
        logits = head.classifier(layers[head.layer_index], lens)
        correct += int((logits.argmax(-1) == batch["spk"]).sum())
        total += len(batch["utts"])
    return 100.0 * correct / max(1, total)
