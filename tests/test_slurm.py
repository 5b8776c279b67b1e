"""The Slurm job backend (utils/slurm.pl) against a real single-node Slurm cluster that
tools/slurm_local.sh installs (root + apt-get) and starts for this module, and stops afterwards.
Where it cannot (no root, no apt-get) these tests skip with that reason."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_RECIPE_CONF, copy_recipe

from asr_gr.data.kaldi_dir import read_table

ROOT = Path(__file__).resolve().parents[1]
SLURM_PL = str(ROOT / "utils" / "slurm.pl")


def _cluster(tmp_path_factory, name, *extra):
    """Start a local Slurm cluster (tools/slurm_local.sh start DIR [extra]) for a module; yields the env
    that reaches it, stops it afterwards; skips with the tool's reason where it cannot start one."""
    d = tmp_path_factory.mktemp(name)
    tool = str(ROOT / "tools" / "slurm_local.sh")
    p = subprocess.run([tool, "start", str(d), *extra], capture_output=True, text=True, timeout=900)
    if p.returncode == 2:
        pytest.skip(p.stderr.strip())
    assert p.returncode == 0, p.stderr
    yield dict(os.environ, SLURM_CONF=str(d / "slurm.conf"), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    subprocess.run([tool, "stop", str(d)], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    yield from _cluster(tmp_path_factory, "slurm")


def _queue(env) -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, env=env).stdout.split("\n")


def _queue_empty(env, timeout=15.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not [x for x in _queue(env) if x.strip()]:
            return True
        time.sleep(0.2)
    return False


def test_array_jobs_each_with_its_log(slurm_env, tmp_path):
    t0 = time.monotonic()
    p = subprocess.run([SLURM_PL, "--num-threads", "1", "JOB=1:3", str(tmp_path / "log" / "t.JOB.log"), "echo",
                        "part", "JOB", "on", "$(hostname -s)"], capture_output=True, text=True, env=slurm_env)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 < 20
    for j in (1, 2, 3):
        log = (tmp_path / "log" / f"t.{j}.log").read_text()
        assert f"part {j} on " in log and "# Ended (code 0)" in log and "slurm job" in log


def test_failing_job_is_named_and_the_array_cancelled(slurm_env, tmp_path):
    script = 'if [ JOB = 2 ]; then echo "ERROR: data/x/text:7: empty line"; exit 3; fi; sleep 300'
    t0 = time.monotonic()
    p = subprocess.run([SLURM_PL, "JOB=1:3", str(tmp_path / "f.JOB.log"), script], capture_output=True, text=True,
                       env=slurm_env, timeout=120)
    assert p.returncode == 1 and time.monotonic() - t0 < 30, p.stderr
    assert "1 of 3 jobs failed (slurm job " in p.stderr and "the others were cancelled" in p.stderr
    assert f"job 2 (exit code 3), log {tmp_path}/f.2.log: ERROR: data/x/text:7: empty line" in p.stderr
    assert _queue_empty(slurm_env), _queue(slurm_env)


def test_impossible_request_is_refused_at_once(slurm_env, tmp_path):
    p = subprocess.run([SLURM_PL, "--mem", "100000G", "JOB=1:2", str(tmp_path / "m.JOB.log"), "true"],
                       capture_output=True, text=True, env=slurm_env, timeout=60)
    assert p.returncode == 1 and "sbatch refused the jobs" in p.stderr and "--mem 100000G" in p.stderr
    p = subprocess.run([SLURM_PL, "--colour", "blue", "JOB=1:2", str(tmp_path / "m.JOB.log"), "true"],
                       capture_output=True, text=True, env=slurm_env, timeout=60)
    assert p.returncode == 1 and "--colour blue: the Slurm config has no 'option colour=...' rule" in p.stderr


def test_sigterm_to_the_driver_cancels_its_jobs(slurm_env, tmp_path):
    p = subprocess.Popen([SLURM_PL, "JOB=1:2", str(tmp_path / "s.JOB.log"), "sleep 300"], stderr=subprocess.PIPE,
                         text=True, env=slurm_env)
    for _ in range(200):
        if sum(" RUNNING" in x for x in _queue(slurm_env)) == 2:
            break
        time.sleep(0.1)
    assert sum(" RUNNING" in x for x in _queue(slurm_env)) == 2
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in p.stderr.read()
    assert _queue_empty(slurm_env), _queue(slurm_env)


def test_two_process_gloo_ddp_through_srun(slurm_env, tmp_path):
    cmd = [SLURM_PL, "--num-threads", "2", str(tmp_path / "log" / "train.log"), sys.executable, "-m",
           "asr_gr.bin.torchrun", "--nproc-per-node", "2", "--port", "29533", "--", "asr_gr.bin.train",
           *_train_args(tmp_path)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=slurm_env, timeout=400)
    log = (tmp_path / "log" / "train.log").read_text()
    assert p.returncode == 0, p.stderr + log[-3000:]
    assert "srun " in log and "--rdzv-backend c10d" in log
    summary = json.loads((tmp_path / "exp" / "train_summary.json").read_text())
    assert summary["world_size"] == 2
    assert "all 2 ranks agree" in (tmp_path / "exp" / "train.log").read_text()


@pytest.fixture(scope="module")
def slurm_two_nodes(tmp_path_factory):
    """A second cluster: two nodes emulated on this host (one slurmd each, tools/slurm_local.sh --nodes 2)."""
    yield from _cluster(tmp_path_factory, "slurm2", "--nodes", "2")


def _train_args(tmp_path) -> list[str]:
    from tiny_data import TINY_CONFIG, make_setup

    paths = make_setup(tmp_path / "data")
    args = ["--exp-dir", str(tmp_path / "exp"), "--no-progress", "--ngpu", "0",
            "--train-dir", str(paths["train_dir"]), "--valid-dir", str(paths["valid_dir"]),
            "--heldout-dir", str(paths["heldout_dir"]), "--token-list", str(paths["token_list"]),
            "--cmvn", str(paths["cmvn_path"])]
    for k, v in TINY_CONFIG.items():
        args += ["--set", f"{k}={v}"] if not isinstance(v, dict) else \
            [x for kk, vv in v.items() for x in ("--set", f"{k}.{kk}={vv}")]
    return args


def test_two_node_ddp_one_torchrun_per_node_through_srun(slurm_two_nodes, tmp_path):
    """--num-nodes 2: a 2-node allocation, srun starts one torchrun per node, and they meet at the first
    node's address (its NodeAddr: these emulated nodes' names do not resolve) as one world of 2 ranks."""
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, env=slurm_two_nodes)
    assert len(set(nodes.stdout.split())) == 2
    cmd = [SLURM_PL, "--num-threads", "1", "--num-nodes", "2", str(tmp_path / "log" / "train.log"), sys.executable,
           "-m", "asr_gr.bin.torchrun", "--nproc-per-node", "1", "--num-nodes", "2", "--port", "29534", "--",
           "asr_gr.bin.train", *_train_args(tmp_path)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=slurm_two_nodes, timeout=400)
    log = (tmp_path / "log" / "train.log").read_text()
    assert p.returncode == 0, p.stderr + log[-3000:]
    assert "srun --nodes=2 --ntasks=2 --ntasks-per-node=1" in log and "--rdzv-endpoint 127.0.0.1:29534" in log
    assert json.loads((tmp_path / "exp" / "train_summary.json").read_text())["world_size"] == 2
    assert "all 2 ranks agree" in (tmp_path / "exp" / "train.log").read_text()
    assert _queue_empty(slurm_two_nodes)


def _slurm_recipe(top, env):
    """The tiny mini_synth recipe, stages 1-7, every job through Slurm (--cmd-backend slurm). For what the
    test compares, the options of the session's local run (conftest.MINI_SYNTH_MASTER_ARGS): --nj 2,
    training on 1 thread (bit-identical training), greedy decoding of dev, test and train_heldout. Left
    out, to be quick: the third system, the LM and beam decoding (--beam-size 1: greedy is the main
    setup, stage 7 compares it), the feature sets no stage here uses (--extra-sets ""), probing of test."""
    d = copy_recipe("mini_synth", top)
    (d / "conf" / "tiny.yaml").write_text(TINY_RECIPE_CONF)
    p = subprocess.run(["./run.sh", "--corpus-opts", "--tiny", "--train-config", "conf/tiny.yaml", "--nj", "2",
                        "--aux", "none mtl", "--probe-sets", "dev", "--stop-stage", "7", "--use-lm", "false",
                        "--beam-size", "1", "--extra-sets", "", "--probe-opts", "--epochs 20 --num-samples 100",
                        "--train-opts", "--set num_threads=1",  # 1 thread: bit-identical training
                        "--cmd-backend", "slurm"],
                       cwd=d, env=env, capture_output=True, text=True, timeout=1500)
    assert p.returncode == 0, p.stderr[-4000:]
    return d


def test_recipe_stages_1_to_7_on_slurm_equal_local(slurm_env, request, tmp_path):
    """The local run is the session's (conftest.mini_synth_master, the same options for what is compared
    here; it also trains tiny_adversarial and decodes with the LM, and stops after stage 5: only the
    decodes, their scores and the features are compared)."""
    master = request.getfixturevalue("mini_synth_master")  # after slurm_env: no local run where that skips
    assert master.process.returncode == 0, master.process.stderr[-4000:]
    local = master.dir
    slurm = _slurm_recipe(tmp_path / "slurm", slurm_env)
    for sysname in ("tiny_none", "tiny_mtl"):
        for s in ("dev", "test", "train_heldout"):
            a, b = local / "exp" / sysname / f"decode_{s}_greedy", slurm / "exp" / sysname / f"decode_{s}_greedy"
            assert (a / "hyp.txt").read_text() == (b / "hyp.txt").read_text()
            ra, rb = json.loads((a / "score" / "result.json").read_text()), json.loads((b / "score" / "result.json")
                                                                                          .read_text())
            assert ra == rb
        assert "slurm job" in (slurm / "exp" / sysname / "log" / "decode.2.log").read_text()
        assert "slurm job" in (slurm / "exp" / sysname / "log" / "train.log").read_text()
    assert "slurm job" in (slurm / "dump" / "fbank" / "train" / "log" / "fbank.2.log").read_text()
    assert "slurm job" in (slurm / "exp" / "log" / "probe_dev.tiny_none+tiny_mtl.2.log").read_text()
    assert read_table(local / "dump" / "fbank" / "test" / "utt2num_frames") == \
        read_table(slurm / "dump" / "fbank" / "test" / "utt2num_frames")
    assert (slurm / "exp" / "compare.md").exists()
    assert _queue_empty(slurm_env)
