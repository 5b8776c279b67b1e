"""Every stage writes <out>/<tool>.record.json (command, cwd, git commit, time, host, resolved config),
and asr_gr.bin.rerun reproduces the outputs from it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from asr_gr.bin import decode, rerun, score
from tiny_data import TINY_CONFIG, make_setup

ROOT = Path(__file__).resolve().parents[1]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny system trained by `python -m asr_gr.bin.train` with relative paths, run in its own dir."""
    top = tmp_path_factory.mktemp("rec")
    make_setup(top / "data")
    cmd = [sys.executable, "-m", "asr_gr.bin.train", "--exp-dir", "exp", "--no-progress",
           "--train-dir", "data/train", "--valid-dir", "data/dev", "--heldout-dir", "data/train",
           "--token-list", "data/tokens.txt", "--cmvn", "data/cmvn.ark", "--aux", "adversarial"]
    for k, v in TINY_CONFIG.items():
        cmd += ["--set", f"{k}={v}"] if not isinstance(v, dict) else \
            [x for kk, vv in v.items() for x in ("--set", f"{k}.{kk}={vv}")]
    p = subprocess.run(cmd, cwd=top, capture_output=True, text=True, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return top


def test_train_record_names_command_commit_and_resolved_config(trained):
    rec = json.loads((trained / "exp" / "train.record.json").read_text())
    assert rec["tool"] == "asr_gr.bin.train" and rec["cwd"] == str(trained)
    assert rec["argv"][:3] == ["--exp-dir", "exp", "--no-progress"]
    assert rec["command"].startswith(f"cd {trained} && ") and "-m asr_gr.bin.train --exp-dir exp" in rec["command"]
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if commit.returncode == 0:  # the toolkit is a git checkout
        assert rec["git"]["commit"] == commit.stdout.strip() and isinstance(rec["git"]["dirty"], bool)
    assert rec["host"] and rec["time"].endswith("+00:00") and rec["versions"]["torch"] == torch.__version__
    assert rec["env"]["OMP_NUM_THREADS"] == "1"
    # the resolved config: every default included, the same values as config.yaml
    cfg = yaml.safe_load((trained / "exp" / "config.yaml").read_text())
    assert rec["config"]["aux"] == "adversarial" and rec["config"]["precision"] == "fp32"
    assert all(cfg[k] == v for k, v in rec["config"].items())


def test_rerun_of_the_train_record_reproduces_the_weights(trained):
    shutil.move(trained / "exp", trained / "exp_first")
    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.rerun", "exp_first/train.record.json"], cwd=trained,
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"rerun: cd {trained} && " in p.stderr
    for f in ("epoch1.pt", "epoch2.pt", "best.pt"):
        a = torch.load(trained / "exp" / f, weights_only=True)
        b = torch.load(trained / "exp_first" / f, weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), f


def test_decode_and_score_records_rerun_to_the_same_files(trained, monkeypatch):
    monkeypatch.chdir(trained)
    exp = "exp_first" if (trained / "exp_first").exists() else "exp"
    decode.main(["--exp-dir", exp, "--data-dir", "data/dev", "--out-dir", "dec", "--checkpoint", "epoch2.pt",
                 "--precision", "bf16"])
    score.main(["--ref-dir", "data/dev", "--hyp", "dec/hyp.txt", "--out-dir", "dec/score"])
    rec = json.loads((trained / "dec" / "decode.record.json").read_text())
    assert rec["config"]["precision"] == "bf16" and rec["config"]["checkpoint"] == "epoch2.pt"
    assert rec["args"]["device"] is None and rec["args"]["beam_size"] == 1  # defaults are recorded too
    hyp, result = (trained / "dec" / "hyp.txt").read_text(), (trained / "dec" / "score" / "result.json").read_text()
    score_rec = (trained / "dec" / "score" / "score.record.json").read_text()
    shutil.rmtree(trained / "dec" / "score")
    (trained / "dec" / "hyp.txt").unlink()
    (trained / "keep.record.json").write_text(score_rec)  # the record outlives the outputs it made
    for r in ("dec/decode.record.json", "keep.record.json"):
        with pytest.raises(SystemExit) as e:
            rerun.main([r])
        assert e.value.code == 0
    assert (trained / "dec" / "hyp.txt").read_text() == hyp
    assert (trained / "dec" / "score" / "result.json").read_text() == result


def test_rerun_of_a_missing_or_bad_record_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        rerun.main([str(tmp_path / "none.record.json")])
    (tmp_path / "bad.record.json").write_text("{}")
    with pytest.raises(SystemExit):
        rerun.main([str(tmp_path / "bad.record.json")])
    err = capsys.readouterr().err.splitlines()
    assert err == [f"ERROR: {tmp_path / 'none.record.json'}: record does not exist",
                   f"ERROR: {tmp_path / 'bad.record.json'}: not a record: no 'tool'"]
