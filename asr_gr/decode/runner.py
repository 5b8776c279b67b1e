"""Decode a dump dir with a trained model: greedy or prefix beam search, ``nj`` worker processes,
optional dump of the encoder's per-layer outputs (layer 0 = input features) for chosen utterances.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from asr_gr.launch.pool import run_parts
from asr_gr.utils import DataError, atomic_path, atomic_write_text


@dataclass
class DecodeOptions:
    checkpoint: str = "best.pt"
    beam_size: int = 1  # 1: greedy
    lm: str | None = None  # ARPA file
    lm_weight: float = 0.5
    word_bonus: float = 0.0
    batch_frames: int = 40000
    num_threads: int = 0
    dump_utts: list = field(default_factory=list)  # utterances whose layers to dump


def _build_dataset(model_cfg, data_dir, spk2id):
    from asr_gr.data.dataset import FeatureDataset
    from asr_gr.features.cmvn import CMVN

    cmvn = CMVN.from_file(model_cfg["cmvn"])
    return FeatureDataset(data_dir, cmvn=cmvn, input_dim=model_cfg["input_dim"], spk2id=spk2id,
                          utt_cmn=model_cfg.get("utt_cmn", False))


def decode_utts(exp_dir, data_dir, utts, opts: DecodeOptions, *, model=None, progress=True):
    """Decode ``utts`` (None: all) of ``data_dir``. Returns (hyps {utt: text}, layers {utt: [np arrays]},
    decoding seconds)."""
    from asr_gr.data.dataset import BucketSampler, collate
    from asr_gr.decode.ctc import greedy_decode
    from asr_gr.decode.beam import beam_search_batch
    from asr_gr.train.restore import load_trained

    if opts.num_threads:
        torch.set_num_threads(opts.num_threads)
    loaded = load_trained(exp_dir, opts.checkpoint)
    model = model or loaded[0]
    cfg, tok, spk2id = loaded[1], loaded[2], loaded[3]
    ds = _build_dataset(cfg, data_dir, spk2id)
    if utts is not None:
        pos = {u: i for i, u in enumerate(ds.utts)}
        ds.lengths = [ds.lengths[pos[u]] for u in utts]
        ds.utts = list(utts)
    beam_kw = {}
    if opts.beam_size > 1 or opts.lm:
        tokens = getattr(tok, "tokens", None)
        if opts.lm:
            from asr_gr.decode.arpa import ArpaLM
            if tokens is None or "<space>" not in tok.index:
                raise DataError(cfg["token_list"], None, "an LM needs a character token list with <space>")
            beam_kw = {"lm": ArpaLM.from_file(opts.lm), "tokens": tokens, "space_id": tok.index["<space>"],
                       "lm_weight": opts.lm_weight, "word_bonus": opts.word_bonus}
    dump = set(opts.dump_utts or ())
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=BucketSampler(ds.lengths, opts.batch_frames, shuffle=False), collate_fn=collate)
    hyps, layers_out = {}, {}
    t0 = time.time()
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"decode {Path(data_dir).name}", unit="batch", mininterval=2,
                          disable=not progress):
            lp, lens, layers = model.ctc_log_probs(batch["feats"], batch["feat_lens"])
            if opts.beam_size > 1 or opts.lm:
                seqs = beam_search_batch(lp, lens, max(1, opts.beam_size), **beam_kw)
            else:
                seqs = greedy_decode(lp, lens)
            for b, (utt, seq) in enumerate(zip(batch["utts"], seqs)):
                hyps[utt] = tok.decode(seq)
                if utt in dump:
                    # layer 0: the (normalised) input features; layer k: output of encoder layer k
                    outs = [batch["feats"][b, : int(batch["feat_lens"][b])].float().numpy().copy()]
                    outs += [x[b, : int(lens[b])].float().numpy().copy() for x in layers]
                    layers_out[utt] = outs
    return hyps, layers_out, time.time() - t0


def _worker(args):
    exp_dir, job_dir, opts = args
    torch.set_num_threads(1)
    opts.num_threads = 1
    return decode_utts(exp_dir, job_dir, None, opts, progress=False)


def _part_fingerprint(exp_dir, data_dir, opts: DecodeOptions, nj: int) -> str:
    """What a part's hypotheses depend on: the features, the checkpoint file, the options, the split."""
    import hashlib
    import json
    from dataclasses import asdict

    h = hashlib.sha256((Path(data_dir) / "feats.scp").read_bytes())
    ck = Path(exp_dir) / opts.checkpoint
    st = ck.stat() if ck.exists() else None
    h.update(json.dumps([str(ck.resolve()), st and st.st_size, st and st.st_mtime_ns, asdict(opts), nj],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def _part_files(out_dir, nj: int, j: int) -> tuple[Path, Path]:
    d = Path(out_dir) / f"split{nj}"
    return d / f"hyp.{j}.txt", d / f"layers.{j}"


def decode_part(exp_dir, data_dir, out_dir, opts: DecodeOptions, nj: int, part: int) -> int:
    """Part ``part`` of ``nj`` (``utils/split_data.sh --per-utt`` parts) into ``out_dir``/split<nj>/
    hyp.<part>.txt (+ layers.<part>/): what one job of a backend runs for :func:`decode_dir`. A part
    whose hypotheses were made from the same features, checkpoint and options is not redone.
    Returns the number of utterances."""
    from asr_gr.data.ops import split_data

    job_dirs = split_data(data_dir, nj, by="utterance")  # made by the driver; current, so not rewritten
    if not 1 <= part <= len(job_dirs):
        raise DataError("--part", None, f"part {part} is not one of 1..{len(job_dirs)}")
    hyp_file, layer_dir = _part_files(out_dir, nj, part)
    fp = _part_fingerprint(exp_dir, data_dir, opts, nj)
    stamp = hyp_file.with_suffix(".fingerprint")
    if hyp_file.exists() and stamp.exists() and stamp.read_text().strip() == fp:
        return sum(1 for _ in hyp_file.open(encoding="utf-8"))
    if nj > 1:  # parallelism comes from the jobs, as with worker processes (_worker)
        from dataclasses import replace

        opts = replace(opts, num_threads=1)
    hyps, layers, secs = decode_utts(exp_dir, job_dirs[part - 1], None, opts, progress=False)
    if opts.dump_utts:
        write_layers(layer_dir, layers)
    atomic_write_text(stamp, fp + "\n")  # written before the hyps: the hyps mark the part done
    atomic_write_text(hyp_file.with_suffix(".seconds"), f"{secs:.3f}\n")
    atomic_write_text(hyp_file, "".join(f"{u} {hyps[u]}\n" for u in sorted(hyps)))
    return len(hyps)


def _read_parts(out_dir, nj: int, opts: DecodeOptions, fp: str):
    """The hypotheses (and dumped layers) of parts 1..nj; DataError naming a part that is missing."""
    import kaldiio

    hyps, layers = {}, {}
    for j in range(1, nj + 1):
        hyp_file, layer_dir = _part_files(out_dir, nj, j)
        stamp = hyp_file.with_suffix(".fingerprint")
        if not hyp_file.exists() or not stamp.exists() or stamp.read_text().strip() != fp:
            raise DataError(hyp_file, None, f"part {j} of {nj} is missing or stale after its job ended")
        for line in hyp_file.read_text(encoding="utf-8").splitlines():
            utt, _, text = line.partition(" ")
            hyps[utt] = text
        if opts.dump_utts and (layer_dir / "layer0.scp").exists():
            k = 0
            while (layer_dir / f"layer{k}.scp").exists():
                for utt, arr in kaldiio.load_scp_sequential(str(layer_dir / f"layer{k}.scp")):
                    layers.setdefault(utt, []).append(arr)
                k += 1
    return hyps, layers


def decode_dir(exp_dir, data_dir, out_dir, opts: DecodeOptions, nj: int = 1, run_jobs=None) -> dict:
    """Decode every utterance of ``data_dir`` into ``out_dir``/hyp.txt (+ rtf.txt, layers/).

    ``nj`` > 1 splits ``data_dir`` as ``utils/split_data.sh --per-utt`` does (``split<nj>utt/<j>/``, each
    part a complete data dir) and decodes each part in its own process with one torch thread.
    ``run_jobs(nj)``, when given, runs the parts instead (a job backend running :func:`decode_part`
    for parts 1..nj, raising when one fails); their hypotheses are then merged.
    """
    from asr_gr.data.kaldi_dir import read_table
    from asr_gr.data.ops import split_data

    scp = Path(data_dir) / "feats.scp"
    if not scp.exists():
        raise DataError(scp, None, "feats.scp does not exist (has stage 2 finished?)")
    all_utts = list(read_table(scp))
    if not all_utts:
        raise DataError(scp, None, "no utterances: there is nothing to decode")
    missing = [u for u in opts.dump_utts if u not in set(all_utts)]
    if missing:
        raise DataError(scp, None, f"utterance '{missing[0]}' of the --dump-layers list is not in the set")
    nj = max(1, min(nj, len(all_utts)))
    t0 = time.time()
    if run_jobs is not None:
        split_data(data_dir, nj, by="utterance")  # once, here, before the jobs read it
        run_jobs(nj)
        hyps, layers = _read_parts(out_dir, nj, opts, _part_fingerprint(exp_dir, data_dir, opts, nj))
    elif nj == 1:
        hyps, layers, _ = decode_utts(exp_dir, data_dir, None, opts)
    else:
        job_dirs = split_data(data_dir, nj, by="utterance")
        hyps, layers = {}, {}
        # spawn: a fork after torch started its threads can deadlock. The first failing or dying
        # worker ends the run (asr_gr.launch.pool).
        for h, lay, _ in run_parts(_worker, [(str(exp_dir), str(j), opts) for j in job_dirs], nj, "spawn",
                                   desc=f"decode {Path(data_dir).name} (nj={nj})"):
            hyps.update(h)
            layers.update(lay)
    elapsed = time.time() - t0
    out = Path(out_dir)
    atomic_write_text(out / "hyp.txt", "".join(f"{u} {hyps[u]}\n" for u in sorted(hyps)))
    u2n = Path(data_dir) / "utt2num_frames"
    frames = sum(int(v) for v in read_table(u2n).values()) if u2n.exists() else None
    if frames is None:
        import kaldiio
        frames = sum(m.shape[0] for _, m in kaldiio.load_scp_sequential(str(scp)))
    audio_seconds = frames * 0.01  # 10 ms frame shift
    rtf = elapsed / max(audio_seconds, 1e-9)
    atomic_write_text(out / "rtf.txt", f"decoding seconds {elapsed:.2f}\naudio seconds {audio_seconds:.2f}\n"
                                       f"RTF {rtf:.5f}\nnj {nj}\nbeam_size {opts.beam_size}\n")
    if opts.dump_utts:
        write_layers(out / "layers", layers)
    return {"hyps": hyps, "rtf": rtf, "elapsed": elapsed, "num_layers": len(next(iter(layers.values()), []))}


def write_layers(out_dir, layers: dict) -> None:
    """``layers`` utt -> [array per layer] as ``out_dir``/layer<k>.ark/.scp (kaldiio)."""
    import kaldiio

    if not layers:
        return
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(layers.values())))
    for k in range(n):
        ark, scp = out_dir / f"layer{k}.ark", out_dir / f"layer{k}.scp"
        with atomic_path(ark) as tark, atomic_path(scp) as tscp:
            with kaldiio.WriteHelper(f"ark,scp:{tark},{tscp}") as w:
                for utt in sorted(layers):
                    w(utt, layers[utt][k])
            # the scp names the temporary ark; point it at the final name
            tscp.write_text(tscp.read_text(encoding="utf-8").replace(str(tark), str(ark)), encoding="utf-8")
