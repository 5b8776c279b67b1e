"""The ablation grid on a Slurm cluster (the recipe's --cmd-backend slurm): each system one job of the
recipe's cmd.sh backend, against a real single-node Slurm that tools/slurm_local.sh starts for this
module (as tests/test_slurm.py; skipped with its reason where it cannot). The recipe dir has
mini_synth's own cmd.sh and conf/slurm.conf; asr.sh is a stand-in that records each call (its Slurm job,
cores, arguments), so these tests take seconds."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_grid import FAKE_ASR
from test_slurm import _cluster, _queue, _queue_empty

from asr_gr.bin import grid

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = "systems:\n  - {aux: none}\n  - {aux: mtl, spk_layer: 2}\n  - {aux: adversarial, spk_layer: 2, semi: true}\n"


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    yield from _cluster(tmp_path_factory, "slurm_grid")


@pytest.fixture
def recipe(slurm_env, tmp_path, monkeypatch):
    """A recipe dir (the current dir) with mini_synth's cmd.sh, conf/slurm.conf and utils/, the stand-in
    asr.sh and a grid of 3 systems; the environment reaches the cluster."""
    src = ROOT / "egs" / "mini_synth" / "asr1"
    d = tmp_path / "recipe"
    (d / "conf").mkdir(parents=True)
    shutil.copy(src / "cmd.sh", d / "cmd.sh")
    shutil.copy(src / "conf" / "slurm.conf", d / "conf" / "slurm.conf")
    (d / "utils").symlink_to(ROOT / "utils")
    (d / "asr.sh").write_text(FAKE_ASR)
    (d / "asr.sh").chmod(0o755)
    (d / "g.yaml").write_text(SYSTEMS)
    monkeypatch.chdir(d)
    for k in ("SLURM_CONF", "PYTHONPATH", "OMP_NUM_THREADS"):
        monkeypatch.setenv(k, slurm_env[k])
    monkeypatch.setenv("EXP", str(d / "exp"))
    for k in ("FAIL_TAG", "BARRIER", "SLEEP"):
        monkeypatch.delenv(k, raising=False)
    yield d
    assert _queue_empty(slurm_env), _queue(slurm_env)  # no job of the grid outlives it


ARGS = ["--grid", "g.yaml", "--", "./asr.sh", "--nj", "1", "--cmd-backend", "slurm"]


def _calls(d):
    return {p.stem: json.loads(p.read_text()) for p in (d / "exp" / "calls").glob("*.json")}


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores for 2 jobs of 1 core at once")
def test_each_system_is_one_slurm_job(recipe, monkeypatch, capsys):
    monkeypatch.setenv("BARRIER", "2")  # a system waits until two have started: were they submitted at once?
    grid.main(ARGS)
    calls = _calls(recipe)
    assert set(calls) == {"prep", "grid_none", "grid_mtl_l2", "grid_adversarial_l2_semi"}
    systems = {t: c for t, c in calls.items() if t != "prep"}
    # the data preparation here (its parts through Slurm: the recipe's --cmd-backend), alone and first
    assert calls["prep"]["job"] is None and calls["prep"]["args"][:4] == ["--nj", "1", "--cmd-backend", "slurm"]
    assert "local" not in calls["prep"]["args"]
    assert all(calls["prep"]["t1"] <= c["t0"] for c in systems.values())
    # each system one job of its own, with the cores of --nj, asr.sh inside on the local backend; no GPU asked
    assert len({c["job"] for c in systems.values()}) == 3 and all(c["job"] for c in systems.values())
    assert all(c["cpus"] == "1" and c["args"][-4:] == ["--cmd-backend", "local", "--nj", "1"] for c in systems.values())
    assert all("gpu" not in c["comment"] for c in systems.values())
    # two systems ran at once (each saw the other start), so the jobs were all submitted together
    assert all(c["seen"] >= 2 for c in systems.values())
    for tag, c in systems.items():
        log = (recipe / "exp" / "log" / f"grid.{tag}.log").read_text()
        assert f"(slurm job {c['job']}_1)" in log and f"fake asr.sh {tag} running" in log and "# Ended (code 0)" in log
        assert (recipe / "exp" / tag / ".grid_done").exists()
    err = capsys.readouterr().err
    assert f"grid: grid_none finished in " in err and f"(slurm job {systems['grid_none']['job']}_1)" in err
    # each system's time and cores are its job's (the stand-in sleeps 1.5 s)
    rows = {r[0]: r for r in (ln.split("\t") for ln in (recipe / "exp" / "grid_times.tsv").read_text().splitlines())}
    for tag in systems:
        assert rows[tag][1] == "1" and rows[tag][3] == "ok" and float(rows[tag][2]) >= 1
    assert (recipe / "exp" / "grid.md").exists()


def test_a_failing_system_is_named_with_its_log_and_a_rerun_redoes_only_it(recipe, monkeypatch, capsys):
    monkeypatch.setenv("FAIL_TAG", "grid_mtl_l2")
    with pytest.raises(SystemExit):
        grid.main(ARGS)
    err = capsys.readouterr().err
    job = _calls(recipe)["grid_mtl_l2"]["job"]
    assert (f"ERROR: grid: 1 part(s) failed: grid_mtl_l2 (slurm job {job}_1, exit code 3, log "
            "exp/log/grid.grid_mtl_l2.log: ERROR: data/train/text:7: empty transcript); fix and rerun") in err
    # the others finished
    assert (recipe / "exp" / "grid_none" / ".grid_done").exists()
    assert (recipe / "exp" / "grid_adversarial_l2_semi" / ".grid_done").exists()
    assert not (recipe / "exp" / "grid_mtl_l2" / ".grid_done").exists()
    assert "grid_mtl_l2\t1\t" in (recipe / "exp" / "grid_times.tsv").read_text()
    (recipe / "exp" / "calls").rename(recipe / "exp" / "calls_1")
    monkeypatch.setenv("FAIL_TAG", "")
    grid.main(ARGS)
    assert set(_calls(recipe)) == {"prep", "grid_mtl_l2"}
    assert "exit 3" not in (recipe / "exp" / "grid_times.tsv").read_text()


def test_a_job_cancelled_from_outside_is_named_and_the_others_finish(recipe, slurm_env):
    """A system's job stopped by Slurm (scancel here; a time limit or a failed node alike) is reported as
    such, with its log; the other systems run to their end."""
    (recipe / "g.yaml").write_text("systems:\n  - {aux: none}\n  - {aux: mtl, spk_layer: 2}\n")
    p = subprocess.Popen([sys.executable, "-m", "asr_gr.bin.grid", *ARGS], env=dict(os.environ, SLEEP="4"),
                         stderr=subprocess.PIPE, text=True)
    try:
        log = recipe / "exp" / "log" / "grid.grid_mtl_l2.log"
        for _ in range(300):  # until the system runs
            if log.exists() and "fake asr.sh grid_mtl_l2 running" in log.read_text():
                break
            time.sleep(0.1)
        subprocess.run(["scancel", "-n", "grid.grid_mtl_l2"], env=slurm_env, check=True)
        assert p.wait(timeout=60) == 1
    finally:
        if p.poll() is None:
            p.kill()
    err = p.stderr.read()
    assert ("ERROR: grid: 1 part(s) failed: grid_mtl_l2 (slurm job " in err and "_1, left the queue without an exit "
            "code: cancelled, out of time or its node failed, log exp/log/grid.grid_mtl_l2.log: fake asr.sh "
            "grid_mtl_l2 running)" in err), err
    assert (recipe / "exp" / "grid_none" / ".grid_done").exists() and not (recipe / "exp" / "grid_mtl_l2" /
                                                                           ".grid_done").exists()


def test_gpu_request_reaches_sbatch_through_slurm_conf(recipe, capsys):
    """The config asks for a GPU: each system goes through cuda_cmd (--gpu 1). conf/slurm.conf as shipped
    makes that --gres=gpu:1, which this GPU-less cluster refuses: each system is named with sbatch's
    reason. With the rule edited to a flag the cluster takes (a job comment), the jobs carry it."""
    (recipe / "conf" / "gpu.yaml").write_text("ngpu: 1\n")
    (recipe / "g.yaml").write_text("config: conf/gpu.yaml\n" + SYSTEMS)
    with pytest.raises(SystemExit):
        grid.main(ARGS)
    err = capsys.readouterr().err
    assert "ERROR: grid: 3 part(s) failed: " in err
    for tag in ("grid_none", "grid_mtl_l2", "grid_adversarial_l2_semi"):
        line = next(ln for ln in err.splitlines() if ln.startswith(f"grid: {tag} FAILED: "))
        assert "sbatch refused the jobs (" in line and " --gres=gpu:1 " in line, line
        assert "Invalid generic resource (gres) specification" in line, line
    assert set(_calls(recipe)) == {"prep"}
    conf = recipe / "conf" / "slurm.conf"
    conf.write_text(conf.read_text().replace("option gpu=* --gres=gpu:$0", "option gpu=* --comment=gpu:$0"))
    grid.main(ARGS)
    calls = _calls(recipe)
    assert all(calls[t]["comment"] == "gpu:1" for t in ("grid_none", "grid_mtl_l2", "grid_adversarial_l2_semi"))


def test_interrupting_the_grid_cancels_its_jobs(recipe, slurm_env):
    env = dict(os.environ, SLEEP="300")
    p = subprocess.Popen([sys.executable, "-m", "asr_gr.bin.grid", *ARGS], env=env, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # every system submitted, and running where there is a core (1 each)
            queue = [x for x in _queue(slurm_env) if x]
            if len(queue) == 3 and sum(" RUNNING" in x for x in queue) == min(3, os.cpu_count() or 1):
                break
            time.sleep(0.1)
        assert len(queue) == 3 and " RUNNING" in " ".join(queue), queue
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=60) == 128 + signal.SIGINT
    finally:
        if p.poll() is None:
            p.kill()
    assert "ERROR: interrupted by SIGINT; its jobs were stopped" in p.stderr.read()
    assert _queue_empty(slurm_env), _queue(slurm_env)
    assert not list((recipe / "exp").glob("*/.grid_done"))


def test_tiny_grid_through_slurm_equals_the_local_recipe(slurm_env, request, tmp_path):
    """The real recipe: ./run.sh --grid ... --cmd-backend slurm on a copy of the session's tiny mini_synth
    run (conftest.mini_synth_master: its data and features are reused, so the preparation is quick), two
    systems as two Slurm jobs at once. The baseline's training options are those of the local run's
    tiny_none (conf/tiny.yaml, 1 thread: bit-identical), so its decodes must be the same."""
    from conftest import copy_recipe_run

    master = request.getfixturevalue("mini_synth_master")  # after slurm_env: no local run where that skips
    assert master.process.returncode == 0, master.process.stderr[-4000:]
    d = copy_recipe_run(master, tmp_path / "run")
    (d / "conf" / "grid_tiny.yaml").write_text("config: conf/tiny.yaml\nsystems:\n  - {aux: none}\n"
                                               "  - {aux: adversarial, spk_layer: 2, semi: true}\n")
    p = subprocess.run(["./run.sh", "--grid", "conf/grid_tiny.yaml", "--corpus-opts", "--tiny", "--nj", "1",
                        "--use-lm", "false", "--beam-size", "1", "--probe-sets", "dev",
                        "--probe-opts", "--epochs 20 --num-samples 100", "--cmd-backend", "slurm"],
                       cwd=d, env=slurm_env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-4000:]
    jobs = set()
    for tag in ("grid_none", "grid_adversarial_l2_semi"):
        log = (d / "exp" / "log" / f"grid.{tag}.log").read_text()
        assert "(slurm job " in log and "finished stages 3-6" in log and "# Ended (code 0)" in log
        jobs.add(log.split("(slurm job ")[1].split(")")[0])
        assert (d / "exp" / tag / "probe_dev" / "probe.tsv").exists() and (d / "exp" / tag / ".grid_done").exists()
    assert len(jobs) == 2
    for s in ("dev", "test"):
        a, b = master.dir / "exp" / "tiny_none" / f"decode_{s}_greedy", d / "exp" / "grid_none" / f"decode_{s}_greedy"
        assert (a / "hyp.txt").read_text() == (b / "hyp.txt").read_text()
        assert json.loads((a / "score" / "result.json").read_text()) == json.loads((b / "score" / "result.json")
                                                                                      .read_text())
    md = (d / "exp" / "grid.md").read_text()
    assert "| grid_adversarial_l2_semi | adversarial | 2 |  | yes |" in md and "## Speaker probing on `dev`" in md
    rows = {ln.split("\t")[0]: ln.split("\t") for ln in (d / "exp" / "grid_times.tsv").read_text().splitlines()}
    assert rows["grid_none"][1] == "1" and rows["grid_adversarial_l2_semi"][3] == "ok"
