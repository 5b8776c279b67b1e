"""asr_gr.bin.pack and Speech2Text.from_pretrained: one archive of a trained system decodes, on a machine
without its exp dir or data dirs, exactly as the exp dir did (greedy and with the packed word LM); a
corrupt, incomplete or malicious archive is a one-line error naming what is wrong."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import yaml
from conftest import copy_recipe_run

from asr_gr.data.kaldi_dir import read_table
from asr_gr.pack import FORMAT, sha256_file, unpack
from asr_gr.utils import DataError

ENV = dict(os.environ, OMP_NUM_THREADS="1")
SYSTEM = "tiny_mtl"  # a system with a speaker head
LM_DECODE = "decode_test_beam100_lm1_ws0"  # run.sh's LM setup; the tiny model's hyps under it are all empty,
LM_OPTS = ["--beam-size", "20", "--lm-weight", "0.3", "--word-score", "5"]  # so these weights: words


@pytest.fixture(scope="module")
def recipe(mini_synth_master, tmp_path_factory):
    """This module's own copy of the session's tiny recipe run (conftest.mini_synth_master)."""
    assert mini_synth_master.process.returncode == 0, mini_synth_master.process.stderr[-3000:]
    return copy_recipe_run(mini_synth_master, tmp_path_factory.mktemp("machine_a"))


class _Done:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _pack(capsys, *args):
    """asr_gr.bin.pack's main in this process (a subprocess costs seconds of imports): (rc, stdout, stderr)."""
    from asr_gr.bin import pack

    capsys.readouterr()
    try:
        pack.main([str(a) for a in args])
        rc = 0
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return _Done(rc, out, err)


def _tar(path: Path, members: dict, meta: dict | None = None, extra=()) -> Path:
    """A .tar.gz of ``members`` {name: bytes} with a meta.yaml listing them (``meta``: instead of it)."""
    if meta is None:
        import hashlib
        meta = {"format": FORMAT, "files": {n: hashlib.sha256(b).hexdigest() for n, b in members.items()}}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [("meta.yaml", yaml.safe_dump(meta).encode())] + list(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return path


def test_packed_system_decodes_as_its_exp_dir_on_another_machine(recipe, tmp_path, capsys, monkeypatch):
    from asr_gr.bin import decode

    exp = recipe / "exp" / SYSTEM
    before = sorted(p.name for p in exp.iterdir())
    greedy, with_lm = tmp_path / "greedy.tar.gz", tmp_path / "lm.tar.gz"
    monkeypatch.chdir(tmp_path)  # not the recipe dir: decode_setup.json's relative paths are found from the exp dir
    p = _pack(capsys, "--exp-dir", exp, "--out", greedy)
    assert p.returncode == 0, p.stderr
    assert "decoded with a word LM; this archive has none" in p.stderr  # the exp dir has an LM decode
    # the LM setup of a stage-4 decode dir (relative paths found from the recipe dir), weights overridden
    p = _pack(capsys, "--exp-dir", exp, "--decode-dir", exp / LM_DECODE, *LM_OPTS, "--out", with_lm)
    assert p.returncode == 0, p.stderr
    assert sorted(p.name for p in exp.iterdir()) == before  # the exp dir is only read
    assert sorted(f.name for f in tmp_path.iterdir()) == ["greedy.tar.gz", "lm.tar.gz"]  # no temporary file left

    with tarfile.open(with_lm) as tar:
        names = tar.getnames()
        meta = yaml.safe_load(tar.extractfile("meta.yaml"))
        cfg = yaml.safe_load(tar.extractfile("config.yaml"))
    assert names[0] == "meta.yaml" and sorted(names[1:]) == sorted(meta["files"]) == sorted(
        ["config.yaml", "model.pt", "cmvn.ark", "tokens.txt", "spk_list.txt", "lm/lm.arpa", "lm/lexicon.txt"])
    assert meta["decode"] == {"decoder": "flashlight", "beam_size": 20, "lm": "lm/lm.arpa",
                              "lexicon": "lm/lexicon.txt", "lm_weight": 0.3, "word_score": 5.0}
    assert meta["source"]["checkpoint"] == "best.pt" and meta["asr_gr_version"] and meta["torch_version"]
    assert cfg["token_list"] == "tokens.txt" and cfg["cmvn"] == "cmvn.ark"
    assert str(recipe.parents[2]) not in yaml.safe_dump(cfg)  # no path of machine A in the config

    # the references: stage 4's greedy decode, and stage 4 with the packed LM setup, from the exp dir
    ref_greedy = read_table(exp / "decode_test_greedy" / "hyp.txt", allow_empty_value=True)
    decode.main(["--exp-dir", str(exp), "--data-dir", str(recipe / "dump" / "fbank" / "test"),
                 "--out-dir", str(tmp_path / "dec_lm"), "--lm", str(recipe / "data/lm/char/lm.arpa"),
                 "--lexicon", str(recipe / "data/lm/char/lexicon.txt"), *LM_OPTS])
    ref_lm = read_table(tmp_path / "dec_lm" / "hyp.txt", allow_empty_value=True)
    assert any(ref_lm.values()) and ref_lm != ref_greedy  # the LM search makes words, its own
    from asr_gr.inference import Speech2Text
    ref_spk = {u: Speech2Text.from_exp(exp)(w, speaker=True).spk_posteriors.tolist()
               for u, w in read_table(recipe / "data" / "test" / "wav.scp").items()}

    # machine B: the audio and the archives only; machine A's tree is gone
    b = tmp_path / "machine_b"
    (b / "wavs").mkdir(parents=True)
    wavs = {}
    for utt, w in read_table(recipe / "data" / "test" / "wav.scp").items():
        wavs[utt] = str(b / "wavs" / f"{utt}.wav")
        shutil.copy(w, wavs[utt])
    top = recipe.parents[2]
    gone = top.with_name(top.name + ".gone")
    top.rename(gone)
    try:
        script = f"""
import json, sys
from pathlib import Path
from asr_gr.inference import Speech2Text
assert not Path({str(exp)!r}).exists()
wavs = json.loads(sys.argv[1]); out = {{}}
for name, kw in (("greedy", {{}}), ("lm", {{}}), ("lm_off", {{"use_lm": False, "beam_size": 1}})):
    s2t = Speech2Text.from_pretrained(f"{{name.split('_')[0]}}.tar.gz", **kw)
    out[name] = {{u: s2t(w).text for u, w in wavs.items()}}
    out[name + "_dir"] = str(s2t.system.exp_dir)
out["spk"] = {{u: s2t(w, speaker=True).spk_posteriors.tolist() for u, w in wavs.items()}}
Path("out.json").write_text(json.dumps(out))
"""
        shutil.move(greedy, b / "greedy.tar.gz")
        shutil.move(with_lm, b / "lm.tar.gz")
        env = dict(ENV, ASR_GR_CACHE=str(b / "cache"))
        p = subprocess.run([sys.executable, "-c", script, json.dumps(wavs)], cwd=b, env=env, capture_output=True,
                           text=True)
        assert p.returncode == 0, p.stderr[-3000:]
        out = json.loads((b / "out.json").read_text())
        assert out["greedy"] == ref_greedy
        assert out["lm"] == ref_lm
        assert out["lm_off"] == ref_greedy  # the LM archive without its LM, beam 1: greedy
        assert out["spk"] == ref_spk  # the speaker head too
        assert Path(out["lm_dir"]).parent == b / "cache" / "packed"
        assert Path(out["lm_dir"]).name == sha256_file(b / "lm.tar.gz")

        # transcribe --model: the archive's decode defaults (its LM), from the cache unpacked above
        utts = sorted(wavs)[:3]
        p = subprocess.run([sys.executable, "-m", "asr_gr.bin.transcribe", "--model", "lm.tar.gz",
                            *(wavs[u] for u in utts)], cwd=b, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-3000:]
        lines = [ln for ln in p.stdout.splitlines() if "\t" in ln]
        assert lines == [f"{wavs[u]}\t{ref_lm[u]}" for u in utts]
        assert sorted(os.listdir(b / "cache" / "packed")) == sorted(
            [sha256_file(b / "greedy.tar.gz"), sha256_file(b / "lm.tar.gz")])  # no leftover temporary dirs
    finally:
        gone.rename(top)


@pytest.fixture(scope="module")
def archive(recipe, tmp_path_factory):
    from asr_gr.pack import pack_exp

    out = tmp_path_factory.mktemp("archives") / "mtl.tar.gz"
    pack_exp(recipe / "exp" / SYSTEM, out)
    return out


def test_unpack_is_cached_atomic_and_safe_against_concurrent_unpacks(archive, tmp_path):
    cache = tmp_path / "cache"
    stale = cache / ".0123456789abcdef.killed.partial"  # what a killed unpack leaves: never used
    stale.mkdir(parents=True)
    os.utime(stale, (0, 0))
    dirs, errors = [], []

    def go():
        try:
            dirs.append(unpack(archive, cache))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(dirs)) == 1
    assert os.listdir(cache) == [sha256_file(archive)]  # one dir; the stale one and every temporary gone
    d = dirs[0]
    mtime = (d / "model.pt").stat().st_mtime_ns
    assert unpack(archive, cache) == d and (d / "model.pt").stat().st_mtime_ns == mtime  # reused
    # a cached file changed after unpacking is an error naming it, not another model
    with open(d / "cmvn.ark", "ab") as f:
        f.write(b"x")
    with pytest.raises(DataError, match=r"cmvn.ark: changed since it was unpacked.*delete"):
        unpack(archive, cache)


def test_corrupt_archive_is_an_error_naming_the_member(archive, tmp_path):
    from asr_gr.inference import Speech2Text

    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    meta = yaml.safe_load(members.pop("meta.yaml"))
    bad = dict(members, **{"cmvn.ark": members["cmvn.ark"][:-1] + bytes([members["cmvn.ark"][-1] ^ 1])})
    corrupt = _tar(tmp_path / "corrupt.tar.gz", bad, meta)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"corrupt.tar.gz: member 'cmvn.ark' is corrupt: its sha256"):
        Speech2Text.from_pretrained(corrupt, cache)
    assert not os.listdir(cache)  # nothing unpacked, no temporary dir left

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match=r"truncated.tar.gz: cannot read the archive"):
        unpack(truncated, cache)
    unlisted = _tar(tmp_path / "unlisted.tar.gz", dict(members, **{"extra.txt": b"hi"}), meta)
    with pytest.raises(DataError, match=r"member 'extra.txt' is not listed in meta.yaml"):
        unpack(unlisted, cache)
    newer = _tar(tmp_path / "newer.tar.gz", members, dict(meta, format=FORMAT + 1))
    with pytest.raises(DataError, match=r"archive format 2 is newer"):
        unpack(newer, cache)
    assert not os.listdir(cache)
    # through the command line: one ERROR line, no traceback
    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.transcribe", "--model", str(corrupt), "--cache-dir",
                        str(cache), str(archive)], env=ENV, capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith(f"ERROR: {corrupt}: member 'cmvn.ark' is corrupt")


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/asr_gr_pack_evil.txt", "lm/../../evil.txt"])
def test_members_outside_the_archive_dir_are_refused(tmp_path, name):
    cache = tmp_path / "a" / "cache"
    evil = _tar(tmp_path / "evil.tar.gz", {"config.yaml": b"x: 1\n", name: b"pwned\n"})
    with pytest.raises(DataError, match="points outside the archive's dir; refusing"):
        unpack(evil, cache)
    assert not (tmp_path / "a" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/asr_gr_pack_evil.txt").exists() and not os.listdir(cache)


def test_links_in_an_archive_are_refused(tmp_path):
    link = tarfile.TarInfo("lm/lexicon.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    evil = _tar(tmp_path / "link.tar.gz", {"config.yaml": b"x: 1\n"}, extra=[link])
    with pytest.raises(DataError, match="member 'lm/lexicon.txt' is a link"):
        unpack(evil, tmp_path / "cache")


def test_pack_of_an_incomplete_exp_dir_names_the_missing_file(recipe, tmp_path, capsys):
    src = recipe / "exp" / SYSTEM
    out = tmp_path / "out" / "x.tar.gz"
    for missing in ("best.pt", "spk_list.txt", "cmvn.ark", "config.yaml"):
        exp = tmp_path / missing / SYSTEM
        exp.mkdir(parents=True)
        for f in ("config.yaml", "best.pt", "spk_list.txt", "cmvn.ark"):
            shutil.copy(src / f, exp / f)
        cfg = yaml.safe_load((exp / "config.yaml").read_text())
        cfg["cmvn"] = str(exp / "cmvn.ark")
        (exp / "config.yaml").write_text(yaml.safe_dump(cfg))
        (exp / missing).unlink()
        p = _pack(capsys, "--exp-dir", exp, "--out", out)
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.strip().splitlines()[-1].startswith(f"ERROR: {exp / missing}: "), p.stderr
        assert not out.parent.exists() or not os.listdir(out.parent)  # nothing written
    p = _pack(capsys, "--exp-dir", src, "--checkpoint", "epoch9.pt", "--out", out)
    assert p.returncode == 1 and f"ERROR: {src / 'epoch9.pt'}: checkpoint does not exist" in p.stderr
    p = _pack(capsys, "--exp-dir", src, "--lm", tmp_path / "no.arpa", "--out", out)
    assert p.returncode == 1 and f"ERROR: {tmp_path / 'no.arpa'}: lm file does not exist" in p.stderr
    p = _pack(capsys, "--exp-dir", src, "--out", tmp_path / "x.zip")
    assert p.returncode == 1 and "must end in .tar.gz" in p.stderr
