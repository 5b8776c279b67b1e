"""Decode a dump dir with a trained model: greedy, the own lexicon-free prefix beam search, or the
lexicon-constrained flashlight beam search with a KenLM word LM; ``nj`` worker processes; optional dump
of the encoder's per-layer outputs (layer 0 = input features) for chosen utterances.
"""

from __future__ import annotations

import json
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
    beam_size: int = 1  # 1 and no LM/lexicon: greedy
    lm: str | None = None  # ARPA file (or KenLM binary for the flashlight decoder)
    lexicon: str | None = None  # flashlight: words spelled in tokens (default: the LM's vocabulary)
    decoder: str = "auto"  # auto (flashlight with --lm/--lexicon, else prefix), flashlight, prefix
    lm_weight: float = 0.5  # weight of the natural-log LM probability
    word_score: float = 0.0  # added per word
    batch_frames: int = 40000
    num_threads: int = 0
    dump_utts: list = field(default_factory=list)  # utterances whose layers to dump
    device: str | None = None  # cpu | cuda; None: cuda if the model's config has ngpu > 0 and one is visible
    precision: str = "fp32"  # fp32 | bf16 | fp16 autocast of the model's forward pass


def decode_utts(exp_dir, data_dir, utts, opts: DecodeOptions, *, system=None, progress=True):
    """Decode ``utts`` (None: all) of ``data_dir`` with ``system`` (an asr_gr.inference.TrainedSystem;
    None: loaded from ``exp_dir``). Returns (hyps {utt: text}, layers {utt: [np arrays]}, decoding seconds)."""
    from asr_gr.data.dataset import BucketSampler, collate
    from asr_gr.decode.beam import beam_search_batch
    from asr_gr.device import autocast, explain_oom
    from asr_gr.inference import greedy_decode, load_trained

    if opts.num_threads:
        torch.set_num_threads(opts.num_threads)
    system = system or load_trained(exp_dir, opts.checkpoint, device=opts.device)
    model, cfg, tok = system.model, system.config, system.tokenizer
    device = next(model.parameters()).device
    ds = system.dataset(data_dir)
    if utts is not None:
        pos = {u: i for i, u in enumerate(ds.utts)}
        ds.lengths = [ds.lengths[pos[u]] for u in utts]
        ds.utts = list(utts)
    beam_kw, flashlight = {}, None
    decoder = resolve_decoder(opts)
    if decoder == "flashlight":
        from asr_gr.decode.flashlight import FlashlightDecoder
        flashlight = FlashlightDecoder(tok, opts.lexicon, opts.lm, beam_size=opts.beam_size,
                                       lm_weight=opts.lm_weight, word_score=opts.word_score)
    elif decoder == "prefix" and (opts.lm or opts.word_score):
        tokens = getattr(tok, "tokens", None)
        if tokens is None or "<space>" not in tok.index:
            raise DataError(cfg["token_list"], None, "the prefix search's word LM needs a character token "
                                                    "list with <space> (use --decoder flashlight)")
        from asr_gr.decode.arpa import ArpaLM
        beam_kw = {"lm": ArpaLM.from_file(opts.lm) if opts.lm else None, "tokens": tokens,
                   "space_id": tok.index["<space>"], "lm_weight": opts.lm_weight, "word_bonus": opts.word_score}
    dump = set(opts.dump_utts or ())
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=BucketSampler(ds.lengths, opts.batch_frames, shuffle=False), collate_fn=collate)
    hyps, layers_out = {}, {}
    t0 = time.time()
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"decode {Path(data_dir).name}", unit="batch", mininterval=2,
                          disable=not progress):
            with explain_oom(opts.batch_frames, "--batch-frames", device, suggest="--batch-frames {}"), \
                    autocast(device, opts.precision):
                lp, lens, layers = model.ctc_log_probs(batch["feats"].to(device), batch["feat_lens"].to(device))
            lp, lens = lp.cpu(), lens.cpu()
            if flashlight is not None:
                texts = flashlight.decode(lp, lens)
            else:
                seqs = greedy_decode(lp, lens) if decoder == "greedy" else \
                    beam_search_batch(lp, lens, max(1, opts.beam_size), **beam_kw)
                texts = [tok.decode(seq) for seq in seqs]
            for b, (utt, text) in enumerate(zip(batch["utts"], texts)):
                hyps[utt] = text
                if utt in dump:
                    # layer 0: the (normalised) input features; layer k: output of encoder layer k
                    outs = [batch["feats"][b, : int(batch["feat_lens"][b])].float().numpy().copy()]
                    outs += [x[b, : int(lens[b])].float().cpu().numpy().copy() for x in layers]
                    layers_out[utt] = outs
    return hyps, layers_out, time.time() - t0


def resolve_decoder(opts: DecodeOptions) -> str:
    """greedy, prefix or flashlight, from ``opts.decoder`` and the other options."""
    if opts.decoder not in ("auto", "flashlight", "prefix"):
        raise DataError("command line", None, f"--decoder must be auto, flashlight or prefix, got {opts.decoder!r}")
    if opts.decoder == "flashlight" or (opts.decoder == "auto" and (opts.lm or opts.lexicon)):
        return "flashlight"
    if opts.lexicon:
        raise DataError("command line", None, "--lexicon needs the flashlight decoder (the prefix search is "
                                              "lexicon-free)")
    if opts.decoder == "prefix" or opts.beam_size > 1 or opts.word_score:
        return "prefix"
    return "greedy"


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


def decode_dir(exp_dir, data_dir, out_dir, opts: DecodeOptions, nj: int = 1, *, system=None,
               run_jobs=None) -> dict:
    """Decode every utterance of ``data_dir`` into ``out_dir``/hyp.txt (+ rtf.txt, layers/).

    ``system``: the loaded exp dir (asr_gr.inference.load_trained), used when ``nj`` is 1.
    ``nj`` > 1 splits ``data_dir`` as ``utils/split_data.sh --per-utt`` does (``split<nj>utt/<j>/``, each
    part a complete data dir) and decodes each part in its own process with one torch thread.
    ``run_jobs(nj)``, when given, runs the parts instead (a job backend running :func:`decode_part`
    for parts 1..nj, raising when one fails); their hypotheses are then merged.
    """
    from asr_gr.data.kaldi_dir import read_table
    from asr_gr.data.ops import split_data

    resolve_decoder(opts)  # option errors before any work
    for f in (opts.lm, opts.lexicon):
        if f is not None and not Path(f).is_file():
            raise DataError(f, None, "file does not exist")
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
        hyps, layers, _ = decode_utts(exp_dir, data_dir, None, opts, system=system)
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
                                       f"RTF {rtf:.5f}\nnj {nj}\nbeam_size {opts.beam_size}\n"
                                       f"device {opts.device or 'auto'}\nprecision {opts.precision}\n")
    setup = {"decoder": resolve_decoder(opts), "beam_size": opts.beam_size, "lm": opts.lm, "lexicon": opts.lexicon,
             "lm_weight": opts.lm_weight, "word_score": opts.word_score, "checkpoint": opts.checkpoint}
    atomic_write_text(out / "decode_setup.json", json.dumps(setup, indent=1) + "\n")
    if opts.dump_utts:
        write_layers(out / "layers", layers)
    return {"hyps": hyps, "rtf": rtf, "elapsed": elapsed, "num_layers": len(next(iter(layers.values()), []))}


def write_layers(out_dir, layers: dict) -> None:
    """``layers`` utt -> [array per layer] as ``out_dir``/layer<k>.ark/.scp (atomically, see arkio)."""
    from asr_gr.features.arkio import write_ark_scp

    if not layers:
        return
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for k in range(len(next(iter(layers.values())))):
        write_ark_scp(out_dir / f"layer{k}.ark", out_dir / f"layer{k}.scp",
                      ((utt, layers[utt][k]) for utt in sorted(layers)))
