"""A trained system as one archive (ESPnet's ``pack``), and the archive loaded back on another machine.

    from asr_gr.pack import pack_exp
    pack_exp("exp/train_adversarial", "adv.tar.gz", checkpoint="best.pt",
             lm="data/lm/char/lm.arpa", lexicon="data/lm/char/lexicon.txt", beam_size=20, lm_weight=1)

    from asr_gr.inference import Speech2Text
    s2t = Speech2Text.from_pretrained("adv.tar.gz")      # unpacked once into a cache dir, verified
    s2t("a.wav").text

An archive (``.tar.gz``) holds plain files only, at its top level, every path relative to it:

    meta.yaml                     format, asr_gr/torch/python versions, created (UTC), source exp dir and
                                  checkpoint, the sha256 of every other member, the decode defaults
    config.yaml                   the exp dir's resolved config (every constructor value filled in), with
                                  token_list and cmvn naming the members below
    model.pt                      the checkpoint's weights only (a state dict; loads with weights_only=True)
    cmvn.ark                      the CMVN stats the model was trained with
    tokens.txt | tokens.model     the character token list or the sentencepiece model
    spk_list.txt                  the speaker classes (+ spk_list_untranscribed.txt of semi-supervised systems)
    lm/<lm file>, lm/lexicon.txt  the word LM and lexicon of the decode defaults, when packed with one

The unpacked archive is an exp dir :func:`asr_gr.inference.load_trained` reads (relative paths in its
config.yaml name its own files). It is unpacked into ``<cache>/<sha256 of the archive>/``: extracted into a
temporary dir beside it, verified, then renamed, so a killed or concurrent unpack never leaves a
half-made dir under the final name (the first of two concurrent unpacks wins; the other uses its dir).
Every load checks the sha256s again, so a cache dir changed after unpacking is an error, not a silent
other model.

The LM is packed when asked for (``--lm``/``--lexicon``, or ``--decode-dir`` naming one of the exp dir's
decode dirs, whose decode_setup.json then gives the whole setup): an exp dir may have been decoded with
several setups, and the one a user ships is their choice.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import logging
import os
import platform
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from asr_gr.utils import DataError, atomic_path

log = logging.getLogger(__name__)

FORMAT = 1  # of the archive layout; a reader refuses archives of a later format
META, CONFIG, MODEL, CMVN_FILE, SPK_LIST = "meta.yaml", "config.yaml", "model.pt", "cmvn.ark", "spk_list.txt"
UNTRANSCRIBED = "spk_list_untranscribed.txt"  # = asr_gr.inference.UNTRANSCRIBED_SPK_LIST
LM_DIR = "lm"
SUFFIXES = (".tar.gz", ".tgz")
STALE_PARTIAL_S = 24 * 3600  # a temporary unpack dir this old is left over from a killed unpack


@dataclass
class DecodeDefaults:
    """The search a packed system decodes with unless told otherwise (the options of asr_gr.bin.decode);
    ``lm``/``lexicon`` are member paths of the archive."""

    decoder: str = "auto"
    beam_size: int = 1
    lm: str | None = None
    lexicon: str | None = None
    lm_weight: float = 0.5
    word_score: float = 0.0


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_dir() -> Path:
    """Where archives are unpacked: $ASR_GR_CACHE/packed, else $XDG_CACHE_HOME/asr_gr/packed, else
    ~/.cache/asr_gr/packed."""
    root = os.environ.get("ASR_GR_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asr_gr"
    return Path(root) / "packed"


# ------------------------------------------------------------------------------------------- packing

def _need(path: Path, reason: str) -> Path:
    if not path.is_file():
        raise DataError(path, None, reason)
    return path


def decode_setup_of(decode_dir) -> dict:
    """The decode setup (decoder, beam_size, lm, lexicon, lm_weight, word_score, checkpoint) stage 4 wrote to
    ``decode_dir``/decode_setup.json; relative LM/lexicon paths are resolved against the current dir, else
    against the recipe dir (two above the exp dir: ``exp/<tag>/decode_<set>_<setup>``), where stage 4 ran."""
    import json

    f = _need(Path(decode_dir) / "decode_setup.json", "does not exist (a decode dir of asr_gr.bin.decode?)")
    try:
        setup = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f, e.lineno, f"invalid JSON: {e.msg}") from None
    recipe = Path(decode_dir).resolve().parent.parent.parent
    for key in ("lm", "lexicon"):
        p = setup.get(key)
        if p and not Path(p).is_absolute() and not Path(p).exists() and (recipe / p).exists():
            setup[key] = str(recipe / p)
        if p and not Path(setup[key]).is_file():
            raise DataError(f, None, f"its {key} {p} does not exist here (run pack from the recipe dir, or "
                                     f"give --{key})")
    return setup


def _lm_decodes(exp: Path) -> list[Path]:
    """The exp dir's decode dirs that decoded with a word LM."""
    import json

    out = []
    for f in sorted(exp.glob("decode_*/decode_setup.json")):
        try:
            if json.loads(f.read_text(encoding="utf-8")).get("lm"):
                out.append(f.parent)
        except (OSError, ValueError):
            continue
    return out


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, int(mtime), 0o644, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack_exp(exp_dir, out, checkpoint: str = "best.pt", *, decode: DecodeDefaults | None = None,
             decode_dir=None) -> dict:
    """Write ``out`` (.tar.gz, atomically), the archive of ``exp_dir`` with its ``checkpoint`` and the
    decode defaults ``decode`` (LM and lexicon paths as files here; they are copied in). Everything is
    checked before anything is written: the exp dir's files exist, the model loads from the checkpoint,
    the search builds (the LM loads, the lexicon spells in the model's tokens). Returns the meta dict."""
    import torch

    from asr_gr import __version__
    from asr_gr.config import load_yaml
    from asr_gr.decode.runner import DecodeOptions, _searcher, resolve_decoder
    from asr_gr.inference import load_trained

    exp, out = Path(exp_dir), Path(out)
    if not out.name.endswith(SUFFIXES):
        raise DataError(out, None, "the archive's name must end in .tar.gz (or .tgz)")
    if not exp.is_dir():
        raise DataError(exp, None, "exp dir does not exist")
    _need(exp / CONFIG, "does not exist: not an exp dir of asr_gr.bin.train")
    raw = load_yaml(exp / CONFIG)
    for key in ("token_list", "cmvn"):
        if not raw.get(key):
            raise DataError(exp / CONFIG, None, f"has no {key} (not written by asr_gr.bin.train?)")
    token_list = _need(Path(raw["token_list"]) if Path(raw["token_list"]).is_absolute()
                       else exp / raw["token_list"], f"token list of {exp / CONFIG} does not exist")
    cmvn = _need(Path(raw["cmvn"]) if Path(raw["cmvn"]).is_absolute() else exp / raw["cmvn"],
                 f"CMVN stats of {exp / CONFIG} do not exist")
    _need(exp / SPK_LIST, "does not exist (has stage 3 started?)")
    _need(exp / checkpoint, "checkpoint does not exist (has stage 3 finished? give --checkpoint)")
    decode = decode or DecodeDefaults()
    opts = DecodeOptions(checkpoint=checkpoint, beam_size=decode.beam_size, lm=decode.lm, lexicon=decode.lexicon,
                         decoder=decode.decoder, lm_weight=decode.lm_weight, word_score=decode.word_score)
    if decode.beam_size < 1:
        raise DataError("command line", None, f"--beam-size must be >= 1, got {decode.beam_size}")
    resolve_decoder(opts)
    for key in ("lm", "lexicon"):
        if getattr(decode, key):
            _need(Path(getattr(decode, key)), f"{key} file does not exist")
    if not decode.lm and decode_dir is None:
        used = _lm_decodes(exp)
        if used:
            log.warning("note: %s decoded with a word LM; this archive has none (greedy/beam without LM). Give "
                        "--decode-dir %s (or --lm/--lexicon) to pack it", used[0], used[0])

    system = load_trained(exp, checkpoint, device="cpu")  # the model builds and the weights fit it
    _searcher(opts, system)  # the LM loads and its lexicon spells in the tokens, here rather than there

    created = time.time()
    tok_name = "tokens.model" if str(token_list).endswith(".model") else "tokens.txt"
    cfg = dict(system.config)  # completed: every constructor value, today's defaults never needed there
    cfg["token_list"], cfg["cmvn"] = tok_name, CMVN_FILE
    with tempfile.TemporaryDirectory(prefix="asr_gr_pack.") as tmp:
        stage = Path(tmp)
        files: dict[str, Path] = {CONFIG: stage / CONFIG, MODEL: stage / MODEL, CMVN_FILE: cmvn,
                                  tok_name: token_list, SPK_LIST: exp / SPK_LIST}
        (stage / CONFIG).write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
        torch.save({k: v.detach().cpu().contiguous() for k, v in system.model.state_dict().items()}, stage / MODEL)
        if (exp / UNTRANSCRIBED).is_file():
            files[UNTRANSCRIBED] = exp / UNTRANSCRIBED
        setup = {"decoder": decode.decoder, "beam_size": int(decode.beam_size), "lm": None, "lexicon": None,
                 "lm_weight": float(decode.lm_weight), "word_score": float(decode.word_score)}
        if decode.lm:
            setup["lm"] = f"{LM_DIR}/{Path(decode.lm).name}"
            files[setup["lm"]] = Path(decode.lm)
        if decode.lexicon:
            setup["lexicon"] = f"{LM_DIR}/lexicon.txt"
            if setup["lexicon"] == setup["lm"]:
                raise DataError(decode.lm, None, "the LM file must not be named lexicon.txt")
            files[setup["lexicon"]] = Path(decode.lexicon)
        meta = {
            "format": FORMAT,
            "asr_gr_version": __version__,
            "torch_version": str(torch.__version__),
            "python_version": platform.python_version(),
            "created": datetime.datetime.fromtimestamp(created, datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "source": {"exp_dir": str(exp.resolve()), "checkpoint": checkpoint,
                       **({"decode_dir": str(Path(decode_dir).resolve())} if decode_dir else {})},
            "decode": setup,
            "files": {name: sha256_file(path) for name, path in files.items()},
        }
        (stage / META).write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
        with atomic_path(out) as part, tarfile.open(part, "w:gz") as tar:
            for name, path in [(META, stage / META)] + list(files.items()):
                with open(path, "rb") as f:
                    tar.addfile(_tarinfo(name, os.fstat(f.fileno()).st_size, created), f)
    return meta


# ------------------------------------------------------------------------------------------ unpacking

def _check_name(archive, name: str) -> None:
    p = PurePosixPath(name)
    if not name or p.is_absolute() or name.startswith(("/", "\\")) or ".." in p.parts or "\\" in name \
            or (len(name) > 1 and name[1] == ":"):
        raise DataError(archive, None, f"member {name!r} points outside the archive's dir; refusing to unpack it")


def _read_meta_bytes(where, data: bytes) -> dict:
    try:
        meta = yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise DataError(where, None, f"{META} is not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict) or "format" not in meta:
        raise DataError(where, None, f"{META} lacks format/files: not an archive of asr_gr.bin.pack")
    if not isinstance(meta["format"], int) or meta["format"] > FORMAT:
        raise DataError(where, None, f"archive format {meta['format']} is newer than this asr_gr reads "
                                     f"({FORMAT}); update asr_gr")
    return meta


def _extract(archive: Path, dest: Path) -> dict:
    """Extract ``archive`` into ``dest`` after checking every member (a plain file or dir, a path inside
    the archive, listed in meta.yaml); returns the meta dict."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                _check_name(archive, m.name)
                if not (m.isfile() or m.isdir()):
                    kind = "link" if (m.issym() or m.islnk()) else "special file"
                    raise DataError(archive, None, f"member {m.name!r} is a {kind}; a packed system holds plain "
                                                   "files only")
            names = [m.name for m in members if m.isfile()]
            if META not in names:
                raise DataError(archive, None, f"has no {META}: not an archive of asr_gr.bin.pack")
            meta = _read_meta_bytes(archive, tar.extractfile(META).read())
            for name in meta["files"]:
                _check_name(archive, str(name))
            extra = sorted(set(names) - set(meta["files"]) - {META})
            if extra:
                raise DataError(archive, None, f"member {extra[0]!r} is not listed in {META}")
            missing = sorted(set(meta["files"]) - set(names))
            if missing:
                raise DataError(archive, None, f"{META} lists {missing[0]!r}, which the archive lacks")
            tar.extractall(dest, filter="data")
    except tarfile.FilterError as e:
        raise DataError(archive, None, f"member rejected on extraction: {e}") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(archive, None, f"cannot read the archive (truncated or corrupt?): {e}") from None
    return meta


def verify(unpacked, archive=None) -> dict:
    """Check every member of an unpacked archive against its sha256 in meta.yaml; a mismatch is a
    DataError naming the member (and ``archive`` when it was just unpacked). Returns the meta dict."""
    d = Path(unpacked)
    where = archive if archive is not None else d
    meta_file = _need(d / META, "does not exist: not an unpacked archive of asr_gr.bin.pack")
    meta = _read_meta_bytes(meta_file, meta_file.read_bytes())
    for name, want in meta["files"].items():
        f = d / name
        if not f.is_file():
            raise DataError(where, None, f"member {name!r} is missing" + ("" if archive else
                                          f" from the unpacked dir (delete {d} to unpack again)"))
        got = sha256_file(f)
        if got != want:
            if archive is not None:
                raise DataError(archive, None, f"member {name!r} is corrupt: its sha256 {got[:16]}... differs "
                                               f"from {META}'s {str(want)[:16]}...")
            raise DataError(f, None, f"changed since it was unpacked (sha256 {got[:16]}... is not {META}'s "
                                     f"{str(want)[:16]}...); delete {d} to unpack the archive again")
    return meta


def _clean_stale(root: Path) -> None:
    """Remove temporary unpack dirs that killed unpacks left behind (older than a day)."""
    now = time.time()
    for p in root.glob(".*.partial"):
        try:
            if now - p.stat().st_mtime > STALE_PARTIAL_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            continue


def unpack(archive, cache_dir=None) -> Path:
    """The dir ``archive`` is unpacked in: ``cache_dir`` (default :func:`default_cache_dir`)/<its sha256>/,
    unpacked now unless an earlier call did; verified either way."""
    archive = Path(archive)
    if not archive.is_file():
        raise DataError(archive, None, "archive does not exist")
    digest = sha256_file(archive)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / digest
    if (final / META).is_file():
        verify(final)
        return final
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}.", suffix=".partial", dir=root))
    try:
        _extract(archive, tmp)
        verify(tmp, archive)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / META).is_file():  # not a concurrent unpack that got there first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("unpacked %s into %s", archive, final)
    return final


def load_packed(archive, cache_dir=None, device=None, *, decoder=None, beam_size: int | None = None,
                lm_weight: float | None = None, word_score: float | None = None, use_lm: bool = True):
    """A Speech2Text of the packed system ``archive`` (see :meth:`asr_gr.inference.Speech2Text.from_pretrained`)."""
    from asr_gr.decode.runner import DecodeOptions, _searcher, resolve_decoder
    from asr_gr.inference import Speech2Text, load_trained

    d = unpack(archive, cache_dir)
    meta = verify(d)
    system = load_trained(d, MODEL, device)
    if decoder is None:
        s = {**DecodeDefaults().__dict__, **meta.get("decode", {})}
        if not use_lm:
            s.update(lm=None, lexicon=None, word_score=0.0,
                     decoder="auto" if s["decoder"] == "flashlight" else s["decoder"])
        for key, value in (("beam_size", beam_size), ("lm_weight", lm_weight), ("word_score", word_score)):
            if value is not None:
                s[key] = value
        opts = DecodeOptions(checkpoint=MODEL, beam_size=int(s["beam_size"]), decoder=s["decoder"],
                             lm=str(d / s["lm"]) if s["lm"] else None,
                             lexicon=str(d / s["lexicon"]) if s["lexicon"] else None,
                             lm_weight=float(s["lm_weight"]), word_score=float(s["word_score"]))
        if resolve_decoder(opts) != "greedy":  # greedy: Speech2Text's own, which keeps the token ids
            decoder = _searcher(opts, system)
    s2t = Speech2Text(system, decoder)
    s2t.meta = meta
    return s2t
