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


@dataclass
class DecodeTask:
    """One decode: the utterances of ``data_dir`` into ``out_dir`` with ``opts``. Tasks of one call that
    share a data dir share its encoder forward pass (the setups differ only in the search)."""
    data_dir: str
    out_dir: str
    opts: DecodeOptions


_FORWARD_FIELDS = ("checkpoint", "batch_frames", "num_threads", "device", "precision")


def _searcher(opts: DecodeOptions, system):
    """``fn(log_probs, lens) -> [text]`` of the setup ``opts``: greedy, prefix beam or flashlight."""
    from asr_gr.decode.beam import beam_search_batch
    from asr_gr.inference import greedy_decode

    tok, cfg = system.tokenizer, system.config
    decoder = resolve_decoder(opts)
    if decoder == "flashlight":
        from asr_gr.decode.flashlight import FlashlightDecoder
        fl = FlashlightDecoder(tok, opts.lexicon, opts.lm, beam_size=opts.beam_size,
                               lm_weight=opts.lm_weight, word_score=opts.word_score)
        return fl.decode
    beam_kw = {}
    if decoder == "prefix" and (opts.lm or opts.word_score):
        tokens = getattr(tok, "tokens", None)
        if tokens is None or "<space>" not in tok.index:
            raise DataError(cfg["token_list"], None, "the prefix search's word LM needs a character token "
                                                    "list with <space> (use --decoder flashlight)")
        from asr_gr.decode.arpa import ArpaLM
        beam_kw = {"lm": ArpaLM.from_file(opts.lm) if opts.lm else None, "tokens": tokens,
                   "space_id": tok.index["<space>"], "lm_weight": opts.lm_weight, "word_bonus": opts.word_score}
    if decoder == "greedy":
        return lambda lp, lens: [tok.decode(seq) for seq in greedy_decode(lp, lens)]
    return lambda lp, lens: [tok.decode(seq) for seq in beam_search_batch(lp, lens, max(1, opts.beam_size),
                                                                            **beam_kw)]


def decode_utts_multi(exp_dir, data_dir, utts, setups: list[DecodeOptions], *, system=None, progress=True,
                      speaker=False):
    """Decode ``utts`` (None: all) of ``data_dir`` with every setup of ``setups`` from ONE encoder
    forward pass (the setups must agree on the checkpoint, batch_frames, device and precision; they
    differ in the search). ``system``: an asr_gr.inference.TrainedSystem (None: loaded from ``exp_dir``).
    ``speaker``: also keep the aux head's logits of every utterance (stage 4's spk_acc.json).
    Returns (hyps per setup [{utt: text}], layers {utt: [np arrays]} of the setups' dump_utts,
    seconds per setup [the shared forward + its own search], speaker logits {utt: array} or None)."""
    from asr_gr.data.dataset import BucketSampler, collate
    from asr_gr.device import autocast, explain_oom
    from asr_gr.inference import load_trained, speaker_logits

    first = setups[0]
    for o in setups[1:]:
        diff = [f for f in _FORWARD_FIELDS if getattr(o, f) != getattr(first, f)]
        if diff:
            raise ValueError(f"decode setups of one data dir differ in {diff[0]}: they share one forward pass")
    if first.num_threads:
        torch.set_num_threads(first.num_threads)
    system = system or load_trained(exp_dir, first.checkpoint, device=first.device)
    model = system.model
    device = next(model.parameters()).device
    ds = system.dataset(data_dir)
    if utts is not None:
        pos = {u: i for i, u in enumerate(ds.utts)}
        ds.lengths = [ds.lengths[pos[u]] for u in utts]
        ds.utts = list(utts)
    searches = [_searcher(o, system) for o in setups]
    speaker = speaker and system.has_speaker_report(ds)
    dump = set().union(*(o.dump_utts or () for o in setups))
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=BucketSampler(ds.lengths, first.batch_frames, shuffle=False), collate_fn=collate)
    hyps, layers_out, spk = [{} for _ in setups], {}, {} if speaker else None
    forward_s, search_s = 0.0, [0.0] * len(setups)
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"decode {Path(data_dir).name}", unit="batch", mininterval=2,
                          disable=not progress):
            t0 = time.perf_counter()
            with explain_oom(first.batch_frames, "--batch-frames", device, suggest="--batch-frames {}"), \
                    autocast(device, first.precision):
                lp, lens, layers = model.ctc_log_probs(batch["feats"].to(device), batch["feat_lens"].to(device))
                if speaker:
                    logits = speaker_logits(model, layers, lens).float().cpu()
            lp, lens = lp.cpu(), lens.cpu()
            forward_s += time.perf_counter() - t0
            for k, search in enumerate(searches):
                t0 = time.perf_counter()
                for utt, text in zip(batch["utts"], search(lp, lens)):
                    hyps[k][utt] = text
                search_s[k] += time.perf_counter() - t0
            for b, utt in enumerate(batch["utts"]):
                if speaker:
                    spk[utt] = logits[b].numpy().copy()
                if utt in dump:
                    # layer 0: the (normalised) input features; layer k: output of encoder layer k
                    outs = [batch["feats"][b, : int(batch["feat_lens"][b])].float().numpy().copy()]
                    outs += [x[b, : int(lens[b])].float().cpu().numpy().copy() for x in layers]
                    layers_out[utt] = outs
    return hyps, layers_out, [forward_s + s for s in search_s], spk


def decode_utts(exp_dir, data_dir, utts, opts: DecodeOptions, *, system=None, progress=True):
    """Decode ``utts`` (None: all) of ``data_dir`` with ``system`` (an asr_gr.inference.TrainedSystem;
    None: loaded from ``exp_dir``). Returns (hyps {utt: text}, layers {utt: [np arrays]}, decoding seconds)."""
    hyps, layers, secs, _ = decode_utts_multi(exp_dir, data_dir, utts, [opts], system=system, progress=progress)
    return hyps[0], layers, secs[0]


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


def _groups(tasks: list[DecodeTask]) -> list[tuple[str, list[int]]]:
    """(data dir, indices of its tasks), data dirs in order of first appearance."""
    out: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        out.setdefault(str(t.data_dir), []).append(i)
    return list(out.items())


def _worker(args):
    """Part j of every data dir, all its setups, in one worker process (the model loaded once)."""
    exp_dir, parts, speaker = args  # parts: [(part dir, [opts of its setups])]
    from dataclasses import replace

    from asr_gr.inference import load_trained

    torch.set_num_threads(1)
    system = None
    out = []
    for job_dir, setups in parts:
        setups = [replace(o, num_threads=1) for o in setups]
        system = system or load_trained(exp_dir, setups[0].checkpoint, device=setups[0].device)
        out.append(decode_utts_multi(exp_dir, job_dir, None, setups, system=system, progress=False,
                                     speaker=speaker))
    return out


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
    """Part ``part`` of ``nj`` of one decode (see :func:`decode_tasks_part`). Returns the number of
    utterances."""
    return decode_tasks_part(exp_dir, [DecodeTask(data_dir, out_dir, opts)], nj, part)[0]


def decode_tasks_part(exp_dir, tasks: list[DecodeTask], nj: int, part: int) -> list[int]:
    """Part ``part`` of ``nj`` (``utils/split_data.sh --per-utt`` parts) of every task into its
    out_dir/split<nj>/hyp.<part>.txt (+ layers.<part>/): what one job of a backend runs for
    :func:`decode_tasks`. A task's part made from the same features, checkpoint and options is not
    redone. Returns the number of utterances per task."""
    from dataclasses import replace

    from asr_gr.data.ops import split_data
    from asr_gr.inference import load_trained

    counts: list[int] = [0] * len(tasks)
    system = None
    for data_dir, idx in _groups(tasks):
        job_dirs = split_data(data_dir, nj, by="utterance")  # made by the driver; current, so not rewritten
        if not 1 <= part <= len(job_dirs):
            raise DataError("--part", None, f"part {part} is not one of 1..{len(job_dirs)} of {data_dir}")
        todo = []
        for i in idx:
            t = tasks[i]
            hyp_file, _ = _part_files(t.out_dir, nj, part)
            stamp = hyp_file.with_suffix(".fingerprint")
            fp = _part_fingerprint(exp_dir, data_dir, t.opts, nj)
            if hyp_file.exists() and stamp.exists() and stamp.read_text().strip() == fp:
                counts[i] = sum(1 for _ in hyp_file.open(encoding="utf-8"))
            else:
                todo.append((i, fp))
        if not todo:
            continue
        # parallelism comes from the jobs, as with worker processes (_worker)
        setups = [replace(tasks[i].opts, num_threads=1) if nj > 1 else tasks[i].opts for i, _ in todo]
        system = system or load_trained(exp_dir, setups[0].checkpoint, device=setups[0].device)
        hyps, layers, secs, logits = decode_utts_multi(exp_dir, job_dirs[part - 1], None, setups, system=system,
                                                       progress=False, speaker=True)
        if logits is not None:  # the speaker head's logits, for the driver's spk_acc.json
            from asr_gr.features.arkio import write_ark_scp
            ark = _spk_file(tasks[idx[0]].out_dir, nj, part)
            write_ark_scp(ark, ark.with_suffix(".scp"), ((u, logits[u][None, :]) for u in sorted(logits)))
        for k, (i, fp) in enumerate(todo):
            t = tasks[i]
            hyp_file, layer_dir = _part_files(t.out_dir, nj, part)
            if t.opts.dump_utts:
                keep = set(t.opts.dump_utts)
                write_layers(layer_dir, {u: v for u, v in layers.items() if u in keep})
            stamp = hyp_file.with_suffix(".fingerprint")
            atomic_write_text(stamp, fp + "\n")  # written before the hyps: the hyps mark the part done
            atomic_write_text(hyp_file.with_suffix(".seconds"), f"{secs[k]:.3f}\n")
            atomic_write_text(hyp_file, "".join(f"{u} {hyps[k][u]}\n" for u in sorted(hyps[k])))
            counts[i] = len(hyps[k])
    return counts


def _spk_file(out_dir, nj: int, j: int) -> Path:
    return Path(out_dir) / f"split{nj}" / f"spk_logits.{j}.ark"


def _read_spk_parts(out_dir, nj: int) -> dict | None:
    """The speaker head's logits the parts wrote (None when a part did not: then the driver runs the
    head itself)."""
    import kaldiio

    out = {}
    for j in range(1, nj + 1):
        scp = _spk_file(out_dir, nj, j).with_suffix(".scp")
        if not scp.exists():
            return None
        out.update({u: m[0] for u, m in kaldiio.load_scp_sequential(str(scp))})
    return out


def _read_parts(out_dir, nj: int, opts: DecodeOptions, fp: str):
    """The hypotheses (and dumped layers) of parts 1..nj, and the slowest part's seconds; DataError
    naming a part that is missing."""
    import kaldiio

    hyps, layers, secs = {}, {}, 0.0
    for j in range(1, nj + 1):
        hyp_file, layer_dir = _part_files(out_dir, nj, j)
        stamp = hyp_file.with_suffix(".fingerprint")
        if not hyp_file.exists() or not stamp.exists() or stamp.read_text().strip() != fp:
            raise DataError(hyp_file, None, f"part {j} of {nj} is missing or stale after its job ended")
        for line in hyp_file.read_text(encoding="utf-8").splitlines():
            utt, _, text = line.partition(" ")
            hyps[utt] = text
        sec_file = hyp_file.with_suffix(".seconds")
        if sec_file.exists():
            secs = max(secs, float(sec_file.read_text().split()[0]))
        if opts.dump_utts and (layer_dir / "layer0.scp").exists():
            k = 0
            while (layer_dir / f"layer{k}.scp").exists():
                for utt, arr in kaldiio.load_scp_sequential(str(layer_dir / f"layer{k}.scp")):
                    layers.setdefault(utt, []).append(arr)
                k += 1
    return hyps, layers, secs


def _check_task(t: DecodeTask) -> list[str]:
    """Option and input errors of a task before any work; its utterances."""
    from asr_gr.data.kaldi_dir import read_table

    resolve_decoder(t.opts)
    for f in (t.opts.lm, t.opts.lexicon):
        if f is not None and not Path(f).is_file():
            raise DataError(f, None, "file does not exist")
    scp = Path(t.data_dir) / "feats.scp"
    if not scp.exists():
        raise DataError(scp, None, "feats.scp does not exist (has stage 2 finished?)")
    all_utts = list(read_table(scp))
    if not all_utts:
        raise DataError(scp, None, "no utterances: there is nothing to decode")
    missing = [u for u in t.opts.dump_utts if u not in set(all_utts)]
    if missing:
        raise DataError(scp, None, f"utterance '{missing[0]}' of the --dump-layers list is not in the set")
    return all_utts


def decode_dir(exp_dir, data_dir, out_dir, opts: DecodeOptions, nj: int = 1, *, system=None,
               run_jobs=None) -> dict:
    """Decode every utterance of ``data_dir`` into ``out_dir``/hyp.txt (+ rtf.txt, layers/): one task
    of :func:`decode_tasks`, whose result it returns."""
    return decode_tasks(exp_dir, [DecodeTask(data_dir, out_dir, opts)], nj, system=system, run_jobs=run_jobs)[0]


def decode_tasks(exp_dir, tasks: list[DecodeTask], nj: int = 1, *, system=None, run_jobs=None,
                 speaker: bool = False) -> list[dict]:
    """Decode every task (data dir -> out dir with its options) with one loaded model: each data dir's
    encoder forward pass is run once and every setup of that data dir searched from its
    log-probabilities. Each out dir gets hyp.txt, rtf.txt, decode_setup.json (+ layers/).

    ``system``: the loaded exp dir (asr_gr.inference.load_trained), used when ``nj`` is 1.
    ``nj`` > 1 splits each data dir as ``utils/split_data.sh --per-utt`` does (``split<nj>utt/<j>/``,
    each part a complete data dir) and runs ``nj`` worker processes with one torch thread, worker j
    decoding part j of every data dir. ``run_jobs(nj)``, when given, runs the parts instead (a job
    backend running :func:`decode_tasks_part` for parts 1..nj, raising when one fails); their
    hypotheses are then merged. ``speaker``: also return, per data dir, the aux head's logits (from the
    same forward pass) as each result's "spk_logits" (None when the model has no head or the set has
    speakers it does not know).

    Returns one dict per task: hyps, rtf, elapsed (the shared forward + its own search; with parts, the
    slowest part), num_layers, spk_logits (or None).
    """
    from asr_gr.data.kaldi_dir import read_table
    from asr_gr.data.ops import split_data

    if not tasks:
        raise DataError("command line", None, "nothing to decode (no data dir)")
    outs = [str(Path(t.out_dir).resolve()) for t in tasks]
    if len(set(outs)) != len(outs):
        dup = next(o for o in outs if outs.count(o) > 1)
        raise DataError(dup, None, "two decodes write the same out dir")
    sizes = {str(t.data_dir): len(_check_task(t)) for t in tasks}
    groups = _groups(tasks)
    nj = max(1, min([nj] + list(sizes.values())))
    hyps: list[dict] = [{} for _ in tasks]
    layers: list[dict] = [{} for _ in tasks]
    secs = [0.0] * len(tasks)
    spk: dict[str, dict | None] = {d: None for d, _ in groups}
    if run_jobs is not None:
        for d, _ in groups:
            split_data(d, nj, by="utterance")  # once, here, before the jobs read it
        run_jobs(nj)
        for i, t in enumerate(tasks):
            hyps[i], layers[i], secs[i] = _read_parts(t.out_dir, nj, t.opts,
                                                      _part_fingerprint(exp_dir, t.data_dir, t.opts, nj))
        if speaker:
            for d, idx in groups:
                spk[d] = _read_spk_parts(tasks[idx[0]].out_dir, nj)
    elif nj == 1:
        for d, idx in groups:
            h, lay, s, spk[d] = decode_utts_multi(exp_dir, d, None, [tasks[i].opts for i in idx], system=system,
                                                  speaker=speaker)
            for k, i in enumerate(idx):
                hyps[i], layers[i], secs[i] = h[k], lay, s[k]
    else:
        job_dirs = {d: split_data(d, nj, by="utterance") for d, _ in groups}
        items = [(str(exp_dir), [(str(job_dirs[d][j]), [tasks[i].opts for i in idx]) for d, idx in groups], speaker)
                 for j in range(nj)]
        # spawn: a fork after torch started its threads can deadlock. The first failing or dying
        # worker ends the run (asr_gr.launch.pool).
        what = Path(groups[0][0]).name if len(groups) == 1 else f"{len(groups)} sets"
        for per_group in run_parts(_worker, items, nj, "spawn", desc=f"decode {what} (nj={nj})"):
            for (d, idx), (h, lay, s, lg) in zip(groups, per_group):
                if lg is not None:
                    spk[d] = {**(spk[d] or {}), **lg}
                for k, i in enumerate(idx):
                    hyps[i].update(h[k])
                    layers[i].update(lay)
                    secs[i] = max(secs[i], s[k])
    results = []
    for i, t in enumerate(tasks):
        out = Path(t.out_dir)
        opts = t.opts
        h = hyps[i]
        keep = set(opts.dump_utts or ())
        lay = {u: v for u, v in layers[i].items() if u in keep}
        atomic_write_text(out / "hyp.txt", "".join(f"{u} {h[u]}\n" for u in sorted(h)))
        u2n = Path(t.data_dir) / "utt2num_frames"
        frames = sum(int(v) for v in read_table(u2n).values()) if u2n.exists() else None
        if frames is None:
            import kaldiio
            frames = sum(m.shape[0] for _, m in kaldiio.load_scp_sequential(str(Path(t.data_dir) / "feats.scp")))
        audio_seconds = frames * 0.01  # 10 ms frame shift
        rtf = secs[i] / max(audio_seconds, 1e-9)
        atomic_write_text(out / "rtf.txt", f"decoding seconds {secs[i]:.2f}\naudio seconds {audio_seconds:.2f}\n"
                                           f"RTF {rtf:.5f}\nnj {nj}\nbeam_size {opts.beam_size}\n"
                                           f"device {opts.device or 'auto'}\nprecision {opts.precision}\n"
                                           "(seconds: the encoder's forward pass, shared by the setups of "
                                           "one data dir, + this setup's search; with parts, the slowest)\n")
        setup = {"decoder": resolve_decoder(opts), "beam_size": opts.beam_size, "lm": opts.lm,
                 "lexicon": opts.lexicon, "lm_weight": opts.lm_weight, "word_score": opts.word_score,
                 "checkpoint": opts.checkpoint}
        atomic_write_text(out / "decode_setup.json", json.dumps(setup, indent=1) + "\n")
        if opts.dump_utts:
            write_layers(out / "layers", lay)
        results.append({"hyps": h, "rtf": rtf, "elapsed": secs[i], "num_layers": len(next(iter(lay.values()), [])),
                        "spk_logits": spk[str(t.data_dir)]})
    return results


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
