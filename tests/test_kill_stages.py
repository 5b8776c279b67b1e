"""SIGKILL each stage (fbank, decoding, scoring) at random points, several times: what is left is either
nothing or complete, and a rerun produces exactly what an uninterrupted run does. (Training: see
test_trainer.py::test_kill_9_then_rerun_resumes_with_the_same_step_count.)"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_gr.config import resolve
from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer
from tiny_data import TINY_CONFIG, make_setup

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _audio_dir(root: Path, n: int = 40) -> Path:
    d = root / "data"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    wav, text, u2s = [], [], []
    for i in range(n):
        utt = f"s{i % 4}-{i:03d}"
        p = root / f"{utt}.wav"
        sf.write(p, (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32), 16000)
        wav.append(f"{utt} {p}\n")
        text.append(f"{utt} HELLO\n")
        u2s.append(f"{utt} s{i % 4}\n")
    (d / "wav.scp").write_text("".join(sorted(wav)))
    (d / "text").write_text("".join(sorted(text)))
    (d / "utt2spk").write_text("".join(sorted(u2s)))
    spks = {}
    for line in sorted(u2s):
        u, s = line.split()
        spks.setdefault(s, []).append(u)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spks.items())))
    return d


def _kill_then_finish(cmd, outputs, check_partial, rng, tries=3):
    """Run ``cmd``, SIGKILL it after a random delay ``tries`` times, checking what is left each time;
    then let it finish. Returns the finished outputs' bytes."""
    for _ in range(tries):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        time.sleep(rng.uniform(0.3, 2.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
        for out in outputs:
            if out.exists():
                check_partial(out)
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    return {o.name: o.read_bytes() for o in outputs}


def test_fbank_killed_at_random_points(tmp_path):
    import kaldiio

    d = _audio_dir(tmp_path)
    ref_out, out = tmp_path / "ref", tmp_path / "dump"
    base = [sys.executable, "-m", "asr_gr.bin.compute_fbank", "--data-dir", str(d), "--nj", "2", "--cmvn"]
    subprocess.run(base + ["--out-dir", str(ref_out)], check=True, capture_output=True, env=ENV)

    def complete(scp):  # a feats.scp that exists must be whole and every entry readable
        if scp.name == "feats.scp":
            assert len(kaldiio.load_scp(str(scp))) == 40
            for _, m in kaldiio.load_scp_sequential(str(scp)):
                assert m.shape[1] == 80

    _kill_then_finish(base + ["--out-dir", str(out)], [out / "feats.scp"], complete, random.Random(1))
    ref = dict(kaldiio.load_scp_sequential(str(ref_out / "feats.scp")))
    got = dict(kaldiio.load_scp_sequential(str(out / "feats.scp")))
    assert ref.keys() == got.keys() and all(np.array_equal(ref[k], got[k]) for k in ref)
    assert (ref_out / "utt2num_frames").read_text() == (out / "utt2num_frames").read_text()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("k")
    paths = make_setup(root / "data")
    cfg = resolve(TRAIN_DEFAULTS, None, [([k], v) for k, v in {**TINY_CONFIG, "max_epochs": 1}.items()])
    t = Trainer(cfg, root / "exp", progress=False, **paths)
    t.write_setup({"token_list": str(paths["token_list"]), "cmvn": str(paths["cmvn_path"])})
    t.run()
    return root, paths


def test_decode_and_score_killed_at_random_points(trained, tmp_path):
    root, paths = trained
    dec = [sys.executable, "-m", "asr_gr.bin.decode", "--exp-dir", str(root / "exp"), "--data-dir",
           str(paths["train_dir"]), "--beam-size", "4"]
    subprocess.run(dec + ["--out-dir", str(tmp_path / "ref")], check=True, capture_output=True, env=ENV)
    n = len((paths["train_dir"] / "feats.scp").read_text().splitlines())

    def whole_hyp(p):
        if p.name == "hyp.txt":
            assert len(p.read_text().splitlines()) == n

    out = tmp_path / "dec"
    got = _kill_then_finish(dec + ["--out-dir", str(out)], [out / "hyp.txt"], whole_hyp, random.Random(2))
    assert got["hyp.txt"] == (tmp_path / "ref" / "hyp.txt").read_bytes()

    sc = [sys.executable, "-m", "asr_gr.bin.score", "--ref-dir", str(paths["train_dir"]), "--hyp",
          str(out / "hyp.txt")]
    subprocess.run(sc + ["--out-dir", str(tmp_path / "sref")], check=True, capture_output=True, env=ENV)

    def whole_result(p):
        text = p.read_text()
        assert text.rstrip().endswith("'") if p.name == "result.txt" else text.strip().endswith("}")

    s_out = tmp_path / "score"
    got = _kill_then_finish(sc + ["--out-dir", str(s_out)], [s_out / "result.txt", s_out / "result.json"],
                            whole_result, random.Random(3))
    assert got["result.json"] == (tmp_path / "sref" / "result.json").read_bytes()
