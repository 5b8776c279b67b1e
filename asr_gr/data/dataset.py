"""Feature datasets over dump dirs (feats.scp + Kaldi tables) and length-bucketed batching."""

from __future__ import annotations

import random
from pathlib import Path

import kaldiio
import numpy as np
import torch

from asr_gr.data.kaldi_dir import read_table, read_text_file, speaker_labels, table_line_numbers
from asr_gr.utils import DataError


class FeatureDataset(torch.utils.data.Dataset):
    """Utterances of a dump dir: normalised features, token ids (if transcribed) and speaker index.

    ``encode`` maps a transcript to token ids (None: the set is untranscribed, every row gets an
    empty target). ``utt_cmn`` subtracts each utterance's own mean after the global CMVN. ``spk2id`` maps speaker labels to class indices; with ``unknown_spk='error'`` a
    speaker outside it is an error, with ``'ignore'`` it gets -1 (no speaker loss).
    """

    def __init__(self, dump_dir, *, cmvn=None, encode=None, spk2id: dict | None = None,
                 unknown_spk: str = "ignore", input_dim: int | None = None, utt_cmn: bool = False):
        d = Path(dump_dir)
        self.dir = d
        scp = d / "feats.scp"
        self.scp = read_table(scp)
        self.utts = list(self.scp)
        self.lengths = self._lengths(d)
        self.cmvn = cmvn
        self.utt_cmn = utt_cmn
        self.input_dim = input_dim
        self.targets: dict[str, list[int]] = {}
        if encode is not None:
            text = read_text_file(d / "text")
            lines = table_line_numbers(d / "text")
            for utt in self.utts:
                if utt not in text:
                    raise DataError(d / "text", None, f"utterance '{utt}' of feats.scp has no transcript")
                ids = encode(text[utt])
                if not ids:
                    raise DataError(d / "text", lines[utt], f"utterance '{utt}' encodes to no tokens")
                self.targets[utt] = ids
        self.spk_label = speaker_labels(d, self.utts)
        self.spk2id = spk2id or {}
        if spk2id is not None and unknown_spk == "error":
            for utt in self.utts:
                if self.spk_label[utt] not in spk2id:
                    raise DataError(d / "utt2spk", table_line_numbers(d / "utt2spk").get(utt),
                                    f"speaker '{self.spk_label[utt]}' of '{utt}' was not seen in training")

    @staticmethod
    def first_dim(dump_dir) -> int | None:
        """Feature dimension of the first utterance of a dump dir (None when it has none)."""
        scp = Path(dump_dir) / "feats.scp"
        table = read_table(scp)
        if not table:
            return None
        utt, entry = next(iter(table.items()))
        try:
            return int(kaldiio.load_mat(entry).shape[1])
        except Exception as e:
            raise DataError(scp, 1, f"cannot read features of '{utt}': {e}") from None

    def _lengths(self, d: Path) -> list[int]:
        u2n = d / "utt2num_frames"
        if u2n.exists():
            table = read_table(u2n)
            try:
                return [int(table[u]) for u in self.utts]
            except (KeyError, ValueError) as e:
                raise DataError(u2n, None, f"bad or missing entry {e}") from None
        return [self._load(u).shape[0] for u in self.utts]

    def _load(self, utt: str) -> np.ndarray:
        try:
            return kaldiio.load_mat(self.scp[utt])
        except Exception as e:
            lines = table_line_numbers(self.dir / "feats.scp")
            raise DataError(self.dir / "feats.scp", lines.get(utt),
                            f"cannot read features of '{utt}': {e}") from None

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int) -> dict:
        utt = self.utts[i]
        feats = self._load(utt).astype(np.float32)
        if self.input_dim is not None and feats.shape[1] != self.input_dim:
            lines = table_line_numbers(self.dir / "feats.scp")
            raise DataError(self.dir / "feats.scp", lines.get(utt),
                            f"features of '{utt}' have dimension {feats.shape[1]}; the model expects "
                            f"{self.input_dim}")
        cmvn_dim = getattr(self.cmvn, "dim", None)
        if cmvn_dim is not None and cmvn_dim != feats.shape[1]:
            raise DataError(getattr(self.cmvn, "path", "CMVN stats"), None,
                            f"CMVN stats have dimension {cmvn_dim}, but the features of '{utt}' "
                            f"({self.dir / 'feats.scp'}) have {feats.shape[1]}; use the cmvn.ark made from "
                            f"these features")
        feats = normalise(feats, self.cmvn, self.utt_cmn)
        return {"utt": utt, "feats": torch.from_numpy(feats), "ys": self.targets.get(utt, []),
                "spk": self.spk2id.get(self.spk_label[utt], -1)}


def normalise(feats: np.ndarray, cmvn=None, utt_cmn: bool = False) -> np.ndarray:
    """What a model sees of an utterance's features: global CMVN, then (``utt_cmn``) the utterance's
    own mean removed (gain and channel). Training, decoding and Speech2Text all go through here."""
    if cmvn is not None:
        feats = cmvn(feats)
    if utt_cmn:
        feats = feats - feats.mean(0, keepdims=True)
    return feats


def collate(items: list[dict]) -> dict:
    lens = torch.tensor([it["feats"].shape[0] for it in items])
    feats = torch.zeros(len(items), int(lens.max()), items[0]["feats"].shape[1])
    for i, it in enumerate(items):
        feats[i, : lens[i]] = it["feats"]
        del it["feats"]
    y_lens = torch.tensor([len(it["ys"]) for it in items])
    ys = torch.zeros(len(items), max(1, int(y_lens.max())), dtype=torch.long)
    for i, it in enumerate(items):
        ys[i, : y_lens[i]] = torch.tensor(it["ys"], dtype=torch.long)
    return {"utts": [it["utt"] for it in items], "feats": feats, "feat_lens": lens, "ys": ys,
            "y_lens": y_lens, "spk": torch.tensor([it["spk"] for it in items], dtype=torch.long)}


def make_batches(lengths: list[int], batch_frames: int, max_batch: int = 256) -> list[list[int]]:
    """Bucket utterances by length: sort, then cut batches whose padded size (longest x count)
    stays within ``batch_frames``. Deterministic; shuffling is the sampler's job."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches, cur, cur_max = [], [], 0
    for i in order:
        new_max = max(cur_max, lengths[i])
        if cur and (new_max * (len(cur) + 1) > batch_frames or len(cur) >= max_batch):
            batches.append(cur)
            cur, new_max = [], lengths[i]
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


class BucketSampler(torch.utils.data.Sampler):
    """Length-bucketed batches in an order shuffled per epoch from ``seed + epoch`` (resumable:
    ``start`` skips the batches already trained on in this epoch)."""

    def __init__(self, lengths, batch_frames: int, seed: int = 0, shuffle: bool = True, rank: int = 0,
                 world_size: int = 1):
        self.batches = make_batches(lengths, batch_frames)
        self.seed, self.shuffle = seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _shuffled(self, batches, salt: int = 0) -> list[list[int]]:
        batches = list(batches)
        if self.shuffle:
            random.Random((self.seed * 100003 + self.epoch) * 7 + salt).shuffle(batches)
        return batches

    def order(self) -> list[list[int]]:
        return self._shuffled(self.batches)

    @property
    def batches_per_epoch(self) -> int:
        return self._total() // self.world_size

    def _total(self) -> int:
        return len(self.batches)

    def rank_order(self) -> list[list[int]]:
        """This rank's batches of the epoch: every world_size-th, the same count on every rank."""
        order = self.order()
        return order[: self.batches_per_epoch * self.world_size][self.rank::self.world_size]

    def __iter__(self):
        return iter(self.rank_order()[self.start:])

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start


class MixedBucketSampler(BucketSampler):
    """Batches of a main (transcribed) set interleaved evenly with batches of an extra (untranscribed)
    set, for a ConcatDataset([main, extra]). ``ratio`` None: every extra batch once per epoch (each
    untranscribed utterance is seen about as often as a transcribed one); a number: that many extra
    batches per main batch, the extra set's batches cycled through if it asks for more than it has."""

    def __init__(self, lengths, extra_lengths, batch_frames: int, ratio: float | None, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        super().__init__(lengths, batch_frames, seed, rank=rank, world_size=world_size)
        offset = len(lengths)
        self.extra = [[i + offset for i in b] for b in make_batches(extra_lengths, batch_frames)]
        if ratio is None:
            self.n_extra = len(self.extra)
            self.ratio = self.n_extra / max(1, len(self.batches))
        else:
            self.ratio = ratio
            self.n_extra = int(round(ratio * len(self.batches))) if self.extra else 0

    def _total(self) -> int:
        return len(self.batches) + self.n_extra

    def order(self) -> list[list[int]]:
        main, extra = self._shuffled(self.batches), self._shuffled(self.extra, salt=1)
        out, acc, k = [], 0.0, 0
        for b in main:
            out.append(b)
            acc += self.ratio
            while acc >= 1.0 - 1e-9 and k < self.n_extra:
                out.append(extra[k % len(extra)])
                k, acc = k + 1, acc - 1.0
        out.extend(extra[j % len(extra)] for j in range(k, self.n_extra))
        return out
