"""Kaldi-compatible log-mel filterbank features, computed in batches, written as Kaldi ark/scp.

The numbers are those of Kaldi's ``compute-fbank-feats`` (and ``torchaudio.compliance.kaldi.fbank``)
with their defaults: povey window, pre-emphasis 0.97, DC offset removal, snip_edges, FFT size
rounded to a power of two, no energy, energy_floor 0, log(max(mel, float eps)); dither 0 by default.

Speed comes from batching: the utterances of a block are laid out in one buffer (each starting at a
multiple of the frame shift), framed with one strided view, and window, pre-emphasis, DC removal,
FFT and the mel matmul run once on the whole block (:func:`FbankConfig.compute_batch`).

Stage 2 (:func:`compute_fbank_dir`) splits a data dir into ``nj`` parts with Kaldi's
``utils/split_data.sh --per-utt`` (:func:`asr_gr.data.ops.split_data`: ``<data>/split<nj>utt/<j>/``);
one worker process per part writes ``split/feats.<j>.ark`` and then ``split/feats.<j>.scp`` (the scp
is the job's "done" marker); the scps are then merged into ``feats.scp``. A rerun redoes only the
jobs whose scp is missing.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from asr_gr.data.audio import iter_utterances
from asr_gr.data.kaldi_dir import read_table, table_line_numbers, write_table
from asr_gr.features.arkio import ArkWriter, write_scp
from asr_gr.utils import DataError, atomic_path

log = logging.getLogger(__name__)

PREEMPH = 0.97
LOW_FREQ = 20.0
EPS = float(torch.finfo(torch.float32).eps)
BLOCK_SECONDS = 30.0  # audio per batched computation (bounds memory: ~2.5x the samples, float32)


@dataclass
class FbankConfig:
    num_mel_bins: int = 80
    sample_frequency: int = 16000
    frame_length: float = 25.0  # ms
    frame_shift: float = 10.0  # ms
    dither: float = 0.0

    @property
    def window_size(self) -> int:
        return int(self.sample_frequency * self.frame_length * 0.001)

    @property
    def window_shift(self) -> int:
        return int(self.sample_frequency * self.frame_shift * 0.001)

    @property
    def fft_size(self) -> int:
        return 1 << (self.window_size - 1).bit_length()

    def num_frames(self, num_samples: int) -> int:
        """Frames of an utterance of ``num_samples`` (snip_edges=True): 0 when shorter than a window."""
        if num_samples < self.window_size:
            return 0
        return 1 + (num_samples - self.window_size) // self.window_shift

    def compute(self, samples: np.ndarray) -> np.ndarray:
        """Features (frames x num_mel_bins, float32) of one utterance; samples are floats in [-1, 1]."""
        return self.compute_batch([samples])[0]

    def compute_batch(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """Features of several utterances at once (the same numbers as :meth:`compute` on each)."""
        if self.dither != 0.0:  # random per frame: no batching trick; Kaldi's own per-utterance path
            return [_torchaudio_fbank(self, s) for s in batch]
        return _fbank_batch(self, batch)


def fbank_config_dict(config: FbankConfig) -> dict:
    return asdict(config)


# Stage 2 records the options of a dump dir's features here; training copies them into config.yaml
# (``fs``, ``frontend``), so that Speech2Text computes the same features from raw audio.
FBANK_CONFIG_FILE = "fbank.json"


def write_fbank_config(dump_dir, config: FbankConfig) -> None:
    with atomic_path(Path(dump_dir) / FBANK_CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(asdict(config), sort_keys=True) + "\n", encoding="utf-8")


def read_fbank_config(dump_dir) -> FbankConfig | None:
    """The options stage 2 extracted ``dump_dir`` with; None for features made elsewhere (Kaldi, ESPnet)
    or by a version of stage 2 that did not record them."""
    path = Path(dump_dir) / FBANK_CONFIG_FILE
    if not path.exists():
        return None
    try:
        return FbankConfig(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as e:
        raise DataError(path, None, f"not a record of fbank options: {str(e).splitlines()[0]}") from None


def same_fbank_config(*dump_dirs) -> FbankConfig | None:
    """The fbank options the given dump dirs (None entries skipped) were extracted with; sets extracted
    with different options (e.g. another sample rate) are an error naming both."""
    found = [(d, read_fbank_config(d)) for d in dump_dirs if d is not None]
    found = [(d, c) for d, c in found if c is not None]
    for d, c in found[1:]:
        if c != found[0][1]:
            raise DataError(Path(d) / FBANK_CONFIG_FILE, None, f"features of {d} were extracted with {asdict(c)}, "
                            f"those of {found[0][0]} with {asdict(found[0][1])}; rerun stage 2 alike")
    return found[0][1] if found else None


# --------------------------------------------------------------------------- the batched kernel

@lru_cache(maxsize=8)
def _constants(num_bins: int, sample_frequency: int, window_size: int, fft_size: int):
    """Povey window (zero-padded to fft_size) and mel filterbank (fft_size//2, num_bins), as Kaldi
    builds them."""
    n = torch.arange(window_size, dtype=torch.float64)
    window = (0.5 - 0.5 * torch.cos(2 * math.pi * n / (window_size - 1))).pow(0.85)
    nyquist = 0.5 * sample_frequency
    mel = lambda f: 1127.0 * torch.log1p(torch.as_tensor(f, dtype=torch.float64) / 700.0)  # noqa: E731
    mel_low, mel_high = mel(LOW_FREQ), mel(nyquist)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    fft_mel = mel(sample_frequency / fft_size * torch.arange(fft_size // 2, dtype=torch.float64)).unsqueeze(0)
    up = (fft_mel - left) / (center - left)
    down = (right - fft_mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)  # (num_bins, fft_size//2); Nyquist bin weight 0
    window = torch.cat([window, torch.zeros(fft_size - window_size, dtype=torch.float64)])
    return window.float(), banks.T.contiguous().float()


def _fbank_batch(cfg: FbankConfig, batch: list[np.ndarray]) -> list[np.ndarray]:
    """Blocks of about BLOCK_SECONDS of audio through :func:`_fbank_block` (bounded memory). A longer
    utterance is cut into pieces at frame boundaries (frames are independent, so nothing changes)."""
    limit = int(BLOCK_SECONDS * cfg.sample_frequency)
    max_frames = max(1, (limit - cfg.window_size) // cfg.window_shift + 1)
    pieces, owner = [], []
    for i, s in enumerate(batch):
        m = cfg.num_frames(len(s))
        if m <= max_frames:
            pieces.append(s)
            owner.append(i)
            continue
        for a in range(0, m, max_frames):
            b = min(m, a + max_frames)
            pieces.append(s[a * cfg.window_shift: (b - 1) * cfg.window_shift + cfg.window_size])
            owner.append(i)
    feats: list[np.ndarray] = []
    i = 0
    while i < len(pieces):
        j, size = i, 0
        while j < len(pieces) and (j == i or size + len(pieces[j]) <= limit):
            size += len(pieces[j])
            j += 1
        feats.extend(_fbank_block(cfg, pieces[i:j]))
        i = j
    if len(pieces) == len(batch):
        return feats
    out: list[list[np.ndarray]] = [[] for _ in batch]
    for k, f in zip(owner, feats):
        out[k].append(f)
    return [parts[0] if len(parts) == 1 else np.concatenate(parts) for parts in out]


def _fbank_block(cfg: FbankConfig, batch: list[np.ndarray]) -> list[np.ndarray]:
    win, shift, nfft = cfg.window_size, cfg.window_shift, cfg.fft_size
    counts = [cfg.num_frames(len(s)) for s in batch]
    if sum(counts) == 0:
        return [np.zeros((0, cfg.num_mel_bins), dtype=np.float32) for _ in batch]
    window, banks = _constants(cfg.num_mel_bins, cfg.sample_frequency, win, nfft)

    # One buffer; utterance i starts at sample r_i * shift, so its frames are rows r_i .. r_i+m_i-1
    # of one strided view of the whole buffer (the few rows that straddle two utterances are
    # computed and dropped). Zeros after the last utterance keep every view in bounds.
    starts, pos = [], 0
    for s in batch:
        starts.append(pos // shift)
        pos += (len(s) + shift - 1) // shift * shift
    num_rows = pos // shift
    g = math.gcd(win, shift)
    buf = np.zeros(pos + nfft + g, dtype=np.float32)
    for r, s in zip(starts, batch):
        buf[r * shift: r * shift + len(s)] = s
    x = torch.from_numpy(buf)
    x.mul_(32768.0)  # Kaldi works on 16-bit-scaled samples; keep its scale so energies match

    # Pre-emphasis of the whole buffer once: e[t] = x[t] - 0.97 x[t-1]. Per frame, after DC
    # removal, Kaldi has y[0] = 0.03 (x[0] - mean) and y[j] = e[j] - 0.03 mean for j >= 1.
    e = torch.empty_like(x)
    e[0] = x[0]
    torch.sub(x[1:], x[:-1], alpha=PREEMPH, out=e[1:])
    frames = torch.empty(num_rows, nfft)
    frames.copy_(e.unfold(0, nfft, shift)[:num_rows])  # samples win..nfft are zeroed by the window
    frames[:, 0] = x[0: num_rows * shift: shift] * (1.0 - PREEMPH)
    # Frame means from sums over gcd(win, shift)-sample pieces.
    pieces = x[: len(x) // g * g].view(-1, g).sum(1)
    means = pieces.unfold(0, win // g, shift // g)[:num_rows].sum(1) * ((1.0 - PREEMPH) / win)
    frames.sub_(means.unsqueeze(1)).mul_(window)  # (after DC removal) x (window, zero-padded)

    spec = torch.view_as_real(torch.fft.rfft(frames))  # (rows, nfft//2+1, 2)
    del frames
    power = spec[..., 0].square()
    power.addcmul_(spec[..., 1], spec[..., 1])  # |X|^2
    mel = torch.matmul(power[:, : nfft // 2], banks)  # the Nyquist bin has weight 0 in every filter
    mel.clamp_(min=EPS).log_()
    out = mel.numpy()
    return [out[r: r + m] for r, m in zip(starts, counts)]


def _torchaudio_fbank(cfg: FbankConfig, samples: np.ndarray) -> np.ndarray:
    import torchaudio.compliance.kaldi as kaldi

    wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0) * 32768.0
    if wav.shape[1] < cfg.window_size:
        return np.zeros((0, cfg.num_mel_bins), dtype=np.float32)
    return kaldi.fbank(wav, num_mel_bins=cfg.num_mel_bins, sample_frequency=cfg.sample_frequency,
                       frame_length=cfg.frame_length, frame_shift=cfg.frame_shift, dither=cfg.dither,
                       energy_floor=0.0).numpy()


# --------------------------------------------------------------------------- stage 2: a data dir

def _utt_file(data_dir: Path) -> Path:
    """The table whose keys are the utterances: segments when there is one, else wav.scp."""
    seg = data_dir / "segments"
    return seg if seg.exists() else data_dir / "wav.scp"


def _job_utts(data_dir: Path, utts: list[str], nj: int) -> list[list[str]]:
    """The utterances of each job. One job: all of them. More: the parts of Kaldi's
    ``utils/split_data.sh --per-utt DIR NJ`` (``DIR/split<nj>utt/<j>/``, contiguous runs of the sorted
    utterances whose sizes differ by at most one), reused while newer than the data dir."""
    nj = max(1, min(nj, len(utts)))
    if nj == 1:
        return [utts]
    from asr_gr.data.ops import split_data

    return [list(read_table(job / "utt2spk")) for job in split_data(data_dir, nj, by="utterance")]


def _audio_kwargs(resample: bool) -> dict:
    """Keyword arguments for iter_utterances; resampling only where the reader supports it."""
    if not resample:
        return {}
    if "resample" not in inspect.signature(iter_utterances).parameters:
        raise DataError("--resample", None, "this version of asr_gr.data.audio cannot resample; "
                                            "resample the audio beforehand")
    return {"resample": True}


def _run_job(args) -> dict:
    """One job: features of ``utts`` (read from the whole data dir, so that errors name its lines) into
    split/feats.<j>.ark, then split/utt2num_frames.<j>, then split/feats.<j>.scp (renamed last: it
    marks the job done). Returns {'frames': ...}; raises DataError."""
    j, data_dir, utts, split_dir, cfg_dict, resample = args
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the batched kernel is fastest on one thread; jobs give parallelism
    try:
        r = _job(j, data_dir, utts, Path(split_dir), FbankConfig(**cfg_dict), resample)
        if "error" in r:  # raised, so that the pool stops the other workers at once (DataError pickles)
            raise DataError(*r["error"])
        return r
    finally:
        torch.set_num_threads(before)


def _job(j: int, data_dir, utts: list[str], split_dir: Path, cfg: FbankConfig, resample: bool) -> dict:
    utt_file = _utt_file(Path(data_dir))
    try:
        (split_dir / f"feats.{j}.scp").unlink(missing_ok=True)  # a stale one must not outlive its ark
        ark = (split_dir / f"feats.{j}.ark").resolve()
        num_frames: dict[str, int] = {}
        block = int(BLOCK_SECONDS * cfg.sample_frequency)
        with atomic_path(ark, suffix=".ark") as tmp_ark:
            with open(tmp_ark, "wb") as fd:
                writer = ArkWriter(fd, ark)
                pending: list[tuple[str, np.ndarray]] = []
                size = 0

                def flush():
                    feats = cfg.compute_batch([s for _, s in pending])
                    for (utt, _), f in zip(pending, feats):
                        if f.shape[0] == 0:
                            raise DataError(utt_file, table_line_numbers(utt_file).get(utt),
                                            f"utterance '{utt}' is shorter than one frame "
                                            f"({cfg.frame_length:g} ms)")
                        writer.write(utt, f)
                        num_frames[utt] = f.shape[0]
                    pending.clear()

                for utt, samples, _ in iter_utterances(data_dir, sample_rate=cfg.sample_frequency,
                                                       utts=utts, **_audio_kwargs(resample)):
                    pending.append((utt, samples))
                    size += len(samples)
                    if size >= block:
                        flush()
                        size = 0
                if pending:
                    flush()
        write_table(split_dir / f"utt2num_frames.{j}", num_frames, sort=False)
        write_scp(split_dir / f"feats.{j}.scp", writer.entries)
        return {"frames": num_frames}
    except DataError as e:
        return {"error": (e.path, e.line, e.reason)}


def _job_is_done(split_dir: Path, j: int, utts: list[str]) -> bool:
    scp, u2n = split_dir / f"feats.{j}.scp", split_dir / f"utt2num_frames.{j}"
    if not (scp.exists() and u2n.exists()):
        return False
    try:
        keys = list(read_table(scp))
        ark = Path(read_table(scp)[keys[0]].rsplit(":", 1)[0]) if keys else None
    except DataError:
        return False
    return keys == utts and list(read_table(u2n)) == utts and ark is not None and ark.exists()


def _remove_outputs(out_dir: Path) -> None:
    """feats.scp first (nothing may point into an ark about to change), then what goes with it."""
    for name in ("feats.scp", "utt2num_frames", FBANK_CONFIG_FILE, "feats.ark"):  # feats.ark: old layout
        (out_dir / name).unlink(missing_ok=True)


def _fingerprint(data_dir: Path, cfg: FbankConfig, nj: int, resample: bool) -> str:
    h = hashlib.sha256()
    h.update((data_dir / "wav.scp").read_bytes())
    seg = data_dir / "segments"
    if seg.exists():
        h.update(seg.read_bytes())
    h.update(json.dumps([asdict(cfg), nj, resample], sort_keys=True).encode())
    return h.hexdigest()


def compute_fbank_dir(data_dir, out_dir, config: FbankConfig | None = None, *, nj: int = 1,
                      resample: bool = False, run_jobs=None) -> int:
    """Extract features for every utterance of ``data_dir`` into ``out_dir``.

    Writes ``split/feats.<j>.{ark,scp}`` (one per job), then ``feats.scp`` (absolute ark paths) and
    ``utt2num_frames``. ``nj`` > 1 splits ``data_dir`` with ``utils/split_data.sh --per-utt`` and runs
    that many worker processes, one torch thread each. A rerun redoes only the jobs whose scp is
    missing; while any job runs there is no ``feats.scp``. ``run_jobs(nj)``, when given, runs the jobs
    instead of worker processes here (a job backend running :func:`compute_fbank_part` for parts 1..nj,
    which raises when one fails).
    Audio at another rate than ``config.sample_frequency`` is an error unless ``resample``.
    Returns the number of utterances.
    """
    config = config or FbankConfig()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    utt_file = _utt_file(data_dir)
    utts = list(read_table(utt_file))
    if not utts:
        raise DataError(utt_file, None, "no utterances")
    _audio_kwargs(resample)  # fail early when resampling is asked for and unsupported
    parts = _job_utts(data_dir, utts, nj)
    split_dir = out_dir / "split"
    split_dir.mkdir(parents=True, exist_ok=True)

    # Jobs made under another wav.scp, config or nj are not reused.
    stamp = split_dir / "fingerprint"
    fp = _fingerprint(data_dir, config, len(parts), resample)
    if not stamp.exists() or stamp.read_text().strip() != fp:
        _remove_outputs(out_dir)
        for p in [*split_dir.glob("feats.*.scp"), *split_dir.glob("utt2num_frames.*")]:
            p.unlink()
        for p in split_dir.glob("feats.*.ark"):  # arks of jobs that no longer exist
            if not p.name[len("feats."):-len(".ark")].isdigit() or int(p.name[6:-4]) > len(parts):
                p.unlink()
        with atomic_path(stamp) as tmp:
            tmp.write_text(fp + "\n")

    todo = [j for j in range(1, len(parts) + 1) if not _job_is_done(split_dir, j, parts[j - 1])]
    for p in split_dir.glob(".feats.*"):  # temp files of jobs that were killed (SIGKILL skips cleanup)
        p.unlink(missing_ok=True)
    if todo:
        _remove_outputs(out_dir)  # jobs rewrite arks that an old feats.scp may point into
        t0 = time.perf_counter()
        cfg_dict = asdict(config)
        jobs = [(j, str(data_dir), parts[j - 1], str(split_dir), cfg_dict, resample) for j in todo]
        if run_jobs is not None:
            run_jobs(len(parts))
            left = [j for j in todo if not _job_is_done(split_dir, j, parts[j - 1])]
            if left:
                raise DataError(split_dir / f"feats.{left[0]}.scp", None,
                                f"jobs {left} of {len(parts)} reported success but wrote no features")
            results = [{"frames": {u: int(n) for u, n in read_table(split_dir / f"utt2num_frames.{j}").items()}}
                       for j in todo]
        elif len(jobs) == 1:
            results = [_run_job(jobs[0])]
        else:
            # fork, as torch's DataLoader workers: each worker sets one torch thread before any
            # torch op (spawn would re-import torch in every worker: seconds of start-up). The first
            # failing or dying worker ends the run (asr_gr.launch.pool).
            from asr_gr.launch.pool import run_parts

            results = run_parts(_run_job, jobs, len(jobs), "fork", what="job")
        for r in results:
            if "error" in r:
                raise DataError(*r["error"])
        frames = sum(sum(r["frames"].values()) for r in results)
        secs = time.perf_counter() - t0
        log.info("fbank %s: %d of %d jobs, %.0f s of audio in %.1f s (%.0fx real time)", data_dir, len(todo),
                 len(parts), frames * config.frame_shift / 1000, secs,
                 frames * config.frame_shift / 1000 / max(secs, 1e-9))
    else:
        log.info("fbank %s: all %d jobs were done already", data_dir, len(parts))

    entries, num_frames = {}, {}
    for j in range(1, len(parts) + 1):
        entries.update(read_table(split_dir / f"feats.{j}.scp"))
        num_frames.update(read_table(split_dir / f"utt2num_frames.{j}"))
    write_table(out_dir / "utt2num_frames", num_frames)
    write_fbank_config(out_dir, config)
    # in the data dir's (C-sorted) order; written last: its presence means every ark is complete
    write_scp(out_dir / "feats.scp", [(u, entries[u]) for u in utts])
    return len(utts)


def compute_fbank_part(data_dir, out_dir, config: FbankConfig | None = None, *, nj: int, part: int,
                       resample: bool = False) -> int:
    """Job ``part`` of ``nj`` of :func:`compute_fbank_dir` alone (what a job backend runs): writes
    ``split/feats.<part>.{ark,scp}`` unless they are done. The split and the fingerprint must have been
    made by :func:`compute_fbank_dir` (which launches the jobs). Returns the number of utterances."""
    config = config or FbankConfig()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    utts = list(read_table(_utt_file(data_dir)))
    parts = _job_utts(data_dir, utts, nj)
    if not 1 <= part <= len(parts):
        raise DataError("--part", None, f"part {part} is not one of 1..{len(parts)}")
    split_dir = out_dir / "split"
    stamp = split_dir / "fingerprint"
    if not stamp.exists() or stamp.read_text().strip() != _fingerprint(data_dir, config, len(parts), resample):
        raise DataError(stamp, None, "missing or made for other inputs; run compute_fbank without --part, "
                                     "which prepares the jobs and launches them")
    utts_j = parts[part - 1]
    if _job_is_done(split_dir, part, utts_j):
        log.info("fbank job %d of %d was done already", part, len(parts))
        return len(utts_j)
    r = _run_job((part, str(data_dir), utts_j, str(split_dir), asdict(config), resample))
    if "error" in r:
        raise DataError(*r["error"])
    log.info("fbank job %d of %d: %d utterances", part, len(parts), len(utts_j))
    return len(utts_j)
