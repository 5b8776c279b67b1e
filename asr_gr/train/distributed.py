"""Devices and multi-process training: one process per GPU (or per CPU worker with gloo), launched by
``torchrun``, which sets RANK/WORLD_SIZE/LOCAL_RANK. Without those variables training is one process."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from asr_gr.utils import ConfigError, TrainingError

log = logging.getLogger(__name__)


@dataclass
class DistInfo:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, ngpu: int) -> "DistInfo":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if ngpu > 0 and not torch.cuda.is_available():
            raise ConfigError(f"ngpu: {ngpu} GPU(s) asked for, but torch sees no CUDA device; use --ngpu 0")
        if ngpu > 1 and world == 1:
            raise ConfigError("ngpu: more than one GPU needs one process each: launch with "
                              f"torchrun --nproc_per_node {ngpu} -m asr_gr.bin.train ... --ngpu 1")
        device = torch.device(f"cuda:{local}" if ngpu > 0 else "cpu")
        if ngpu > 0:
            torch.cuda.set_device(device)
        if world > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if ngpu > 0 else "gloo")
        return cls(rank, world, device)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world_size == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        # The speaker head gets no gradient on batches without known speakers.
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def all_true(self, flag: bool) -> bool:
        """True on every rank only if ``flag`` is true on every rank (keeps skipped steps in lockstep)."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([1 if flag else 0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def check_agree(self, model: torch.nn.Module) -> None:
        """Raise if the ranks' weights differ (they must, after synchronised steps, be identical)."""
        if self.world_size == 1:
            return
        total = sum(p.detach().double().sum() for p in model.parameters()).reshape(1).to(self.device)
        gathered = [torch.zeros_like(total) for _ in range(self.world_size)]
        dist.all_gather(gathered, total)
        values = [float(g) for g in gathered]
        if max(values) - min(values) > 1e-6 * max(1.0, abs(values[0])):
            raise TrainingError(f"ranks disagree on the weights: checksums {values}")
        log.info("all %d ranks agree: weight checksum %.6f", self.world_size, values[0])

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.barrier()  # no rank tears its connections down while another still uses them
            dist.destroy_process_group()
