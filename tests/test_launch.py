"""The local job backend (utils/run.pl) and "a failing worker ends the run": every parallel stage with
nj 2, through worker processes and through the backend, ends within seconds of a worker that fails on
bad data or is killed, with that worker's one-line error and a non-zero status."""

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import kaldiio
import pytest

from asr_gr.launch.jobs import JobArray, JobsFailed, command_line
from asr_gr.launch.local import run_local
from asr_gr.launch.pool import WorkerDied, run_parts
from asr_gr.utils import DataError

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
RUN_PL = str(ROOT / "utils" / "run.pl")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_data_error_survives_pickling():
    e = pickle.loads(pickle.dumps(DataError("data/x/wav.scp", 3, "bad entry")))
    assert str(e) == "data/x/wav.scp:3: bad entry" and (e.path, e.line, e.reason) == ("data/x/wav.scp", 3, "bad entry")


def test_command_line_quotes_like_kaldi():
    assert command_line(["a", "JOB", "|", "b"]) == "a JOB | b"
    assert command_line(["echo", "0.9 1.0"]) == 'echo "0.9 1.0"'  # one word, still expandable
    assert command_line(["echo", 'say "x"']) == "echo 'say \"x\"'"


def test_run_pl_runs_every_job_with_its_own_log(tmp_path):
    p = subprocess.run([RUN_PL, "JOB=1:3", str(tmp_path / "log" / "t.JOB.log"), "echo", "part", "JOB", "of", "3"],
                       capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stderr
    for j in (1, 2, 3):
        log = (tmp_path / "log" / f"t.{j}.log").read_text()
        assert f"part {j} of 3" in log and "# Ended (code 0)" in log


def test_first_failure_stops_the_other_jobs_and_names_job_and_log(tmp_path):
    log = tmp_path / "f.JOB.log"
    script = (f'echo $$ > {tmp_path}/pid.JOB; if [ JOB = 2 ]; then sleep 0.5; '
              f'echo "ERROR: data/x/text:7: empty line"; exit 3; fi; sleep 60')
    t0 = time.monotonic()
    with pytest.raises(JobsFailed) as e:
        run_local(JobArray("JOB", 1, 3, str(log), [script]), max_jobs_run=3)
    assert time.monotonic() - t0 < 10
    msg = str(e.value)
    assert "1 of 3 jobs failed" in msg and f"job 2 (exit code 3), log {tmp_path}/f.2.log" in msg
    assert "ERROR: data/x/text:7: empty line" in msg and e.value.failed[0][0] == 2
    for j in (1, 3):  # the others were terminated, their process groups too
        assert not _alive(int((tmp_path / f"pid.{j}").read_text()))


def test_a_killed_job_ends_the_run(tmp_path):
    script = 'if [ JOB = 1 ]; then sleep 0.3; kill -9 $$; fi; sleep 60'
    t0 = time.monotonic()
    p = subprocess.run([RUN_PL, "JOB=1:2", str(tmp_path / "k.JOB.log"), script], capture_output=True, text=True,
                       env=ENV, timeout=30)
    assert p.returncode == 1 and time.monotonic() - t0 < 10
    assert f"job 1 (killed by SIGKILL), log {tmp_path}/k.1.log" in p.stderr


def test_sigterm_to_the_driver_stops_every_job(tmp_path):
    p = subprocess.Popen([RUN_PL, "JOB=1:2", str(tmp_path / "s.JOB.log"), f"echo $$ > {tmp_path}/pid.JOB; sleep 60"],
                         stderr=subprocess.PIPE, text=True, env=ENV)
    for _ in range(100):
        if all((tmp_path / f"pid.{j}").exists() and (tmp_path / f"pid.{j}").read_text().strip() for j in (1, 2)):
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in p.stderr.read()
    assert not any(_alive(int((tmp_path / f"pid.{j}").read_text())) for j in (1, 2))


def _fail_on_two(x):
    if x == 2:
        raise DataError("data/set/feats.scp", 2, "bad matrix")
    time.sleep(300)


def _die_on_two(x):
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(300)


# spawn is covered by the decoding tests below (decode's pool spawns its workers); spawned workers
# cannot reliably import functions of this test module.
@pytest.mark.parametrize("method", ["fork"])
def test_worker_pool_ends_on_first_error_and_on_a_dead_worker(method):
    t0 = time.monotonic()
    with pytest.raises(DataError, match="data/set/feats.scp:2: bad matrix"):
        run_parts(_fail_on_two, [1, 2], 2, method)
    with pytest.raises(WorkerDied, match="killed by SIGKILL"):
        run_parts(_die_on_two, [1, 2], 2, method)
    assert time.monotonic() - t0 < 20


# --- the stages, nj 2: bad data and a killed worker, with worker processes and with utils/run.pl ----

def _audio_set(root: Path, n: int = 8, secs: float = 1.0) -> Path:
    import numpy as np
    import soundfile as sf

    d = root / "data"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    wav, text, u2s = [], [], []
    for i in range(n):
        utt = f"s{i % 2}-{i:03d}"
        p = root / f"{utt}.wav"
        sf.write(p, (0.1 * rng.standard_normal(int(16000 * secs))).astype(np.float32), 16000)
        wav.append(f"{utt} {p}\n")
        text.append(f"{utt} HELLO\n")
        u2s.append(f"{utt} s{i % 2}\n")
    (d / "wav.scp").write_text("".join(sorted(wav)))
    (d / "text").write_text("".join(sorted(text)))
    (d / "utt2spk").write_text("".join(sorted(u2s)))
    (d / "spk2utt").write_text("".join(f"s{s} " + " ".join(f"s{s}-{i:03d}" for i in range(s, n, 2)) + "\n"
                                       for s in (0, 1)))
    return d


# The healthy worker of the fbank runs sleeps 300 s: a run that ends well before that did not wait for
# it. LIMIT allows for three Python + torch start-ups on a loaded 2-core machine (alone: 5-8 s).
LIMIT = 60


def _run_timed(cmd):
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
    return p, time.monotonic() - t0


BACKENDS = [[], ["--cmd", RUN_PL]]


@pytest.mark.parametrize("backend", BACKENDS, ids=["workers", "run.pl"])
def test_fbank_nj2_bad_audio_and_killed_worker(tmp_path, backend):
    d = _audio_set(tmp_path)
    lines = (d / "wav.scp").read_text().splitlines()
    u0, w0 = lines[0].split()
    lines[0] = f"{u0} sleep 300; cat {w0} |"  # part 1 is slow: the run must not wait for it
    # the last utterance (part 2) is not audio: a DataError in that worker
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav file at all")
    utt = lines[-1].split()[0]
    (d / "wav.scp").write_text("\n".join(lines[:-1] + [f"{utt} {bad}"]) + "\n")
    base = [sys.executable, "-m", "asr_gr.bin.compute_fbank", "--data-dir", str(d), "--nj", "2", *backend]
    p, secs = _run_timed(base + ["--out-dir", str(tmp_path / "dump1")])
    assert p.returncode == 1 and secs < LIMIT, (secs, p.stderr[-2000:])
    assert f"{d}/wav.scp:8:" in p.stderr, p.stderr[-2000:]
    if backend:
        assert f"job 2 (exit code 1), log {tmp_path}/dump1/log/fbank.2.log" in p.stderr
    # a worker killed (SIGKILL) while reading its audio: the wav.scp pipe kills its reader, the worker
    (d / "wav.scp").write_text("\n".join(lines[:-1] + [f"{utt} kill -9 $PPID; sleep 300; cat {lines[-1].split()[1]} |"])
                               + "\n")
    p, secs = _run_timed(base + ["--out-dir", str(tmp_path / "dump2")])
    assert p.returncode == 1 and secs < LIMIT, (secs, p.stderr[-2000:])
    assert "killed by SIGKILL" in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "dump2" / "feats.scp").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from asr_gr.config import resolve
    from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer
    from tiny_data import TINY_CONFIG, make_setup

    root = tmp_path_factory.mktemp("t")
    paths = make_setup(root / "data")
    cfg = resolve(TRAIN_DEFAULTS, None, [([k], v) for k, v in {**TINY_CONFIG, "max_epochs": 1}.items()])
    t = Trainer(cfg, root / "exp", progress=False, **paths)
    t.write_setup({"token_list": str(paths["token_list"]), "cmvn": str(paths["cmvn_path"])})
    t.run()
    return root, paths


def _broken_copy(src: Path, dst: Path, how: str) -> Path:
    """A copy of dump dir ``src`` whose last utterance (in part 2 of 2) is broken: its ark is missing
    ('missing'), or reading it kills the reader's process ('kill')."""
    import shutil

    shutil.copytree(src, dst)
    scp = kaldiio.load_scp(str(src / "feats.scp"))
    utts = sorted(scp)
    lines = []
    for u in utts:
        if u == utts[-1] and how == "missing":
            ark = dst / "part2.ark"
            with kaldiio.WriteHelper(f"ark,scp:{ark},{dst / 'one.scp'}") as w:
                w(u, scp[u])
            lines.append((dst / "one.scp").read_text().strip())
            ark.unlink()  # as in the issue: one ark of the set deleted
        elif u == utts[-1]:
            lines.append(f"{u} kill -9 $PPID; sleep 300 |")
        else:
            lines.append(f"{u} {(src / 'feats.scp').read_text().split(u + ' ', 1)[1].splitlines()[0]}")
    (dst / "feats.scp").write_text("\n".join(lines) + "\n")
    return dst


@pytest.mark.parametrize("backend", BACKENDS, ids=["workers", "run.pl"])
def test_decode_nj2_missing_ark_and_killed_worker(trained, tmp_path, backend):
    root, paths = trained
    for how, expect in (("missing", "part2.ark"), ("kill", "killed by SIGKILL")):
        dump = _broken_copy(paths["train_dir"], tmp_path / f"dump_{how}", how)
        out = tmp_path / f"dec_{how}"
        p, secs = _run_timed([sys.executable, "-m", "asr_gr.bin.decode", "--exp-dir", str(root / "exp"),
                              "--data-dir", str(dump), "--out-dir", str(out), "--nj", "2", *backend])
        assert p.returncode == 1 and secs < LIMIT, (how, secs, p.stderr[-2000:])  # two python start-ups of torch
        assert expect in p.stderr and "Traceback" not in p.stderr.split("ERROR:")[-1], p.stderr[-2000:]
        assert not (out / "hyp.txt").exists()
        if backend:
            assert f"job 2 " in p.stderr and f"log {out}/log/decode.2.log" in p.stderr


def test_decode_through_run_pl_equals_workers_and_rerun_reuses_parts(trained, tmp_path):
    root, paths = trained
    base = [sys.executable, "-m", "asr_gr.bin.decode", "--exp-dir", str(root / "exp"), "--data-dir",
            str(paths["train_dir"]), "--nj", "2"]
    a = subprocess.run(base + ["--out-dir", str(tmp_path / "a")], check=True, capture_output=True, text=True,
                       env=ENV)
    assert "leaked semaphore" not in a.stderr and "Traceback" not in a.stderr
    subprocess.run(base + ["--out-dir", str(tmp_path / "b"), "--cmd", RUN_PL], check=True, capture_output=True,
                   env=ENV)
    assert (tmp_path / "a" / "hyp.txt").read_bytes() == (tmp_path / "b" / "hyp.txt").read_bytes()
    assert "# Ended (code 0)" in (tmp_path / "b" / "log" / "decode.2.log").read_text()
    part1 = tmp_path / "b" / "split2" / "hyp.1.txt"
    before = part1.stat().st_mtime_ns
    (tmp_path / "b" / "split2" / "hyp.2.txt").unlink()  # a failed part: only it is redone
    subprocess.run(base + ["--out-dir", str(tmp_path / "b"), "--cmd", RUN_PL], check=True, capture_output=True,
                   env=ENV)
    assert part1.stat().st_mtime_ns == before
    assert (tmp_path / "a" / "hyp.txt").read_bytes() == (tmp_path / "b" / "hyp.txt").read_bytes()


def test_probe_jobs_over_systems_end_on_a_failing_system(trained, tmp_path):
    """Stage 6 runs one probe job per system through the backend; a broken system ends the run."""
    import shutil

    root, paths = trained
    good, bad = tmp_path / "exp_good", tmp_path / "exp_bad"
    shutil.copytree(root / "exp", good)
    shutil.copytree(root / "exp", bad)
    (bad / "best.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "systems").write_text(f"{good}\n{bad}\n")
    p, secs = _run_timed([RUN_PL, "JOB=1:2", str(tmp_path / "log" / "probe.JOB.log"), sys.executable, "-m",
                          "asr_gr.bin.probe", "--exp-dir", f"$(sed -n JOBp {tmp_path}/systems)",
                          "--data-dir", str(paths["train_dir"]), "--epochs", "20"])
    assert p.returncode == 1 and secs < 30, p.stderr[-2000:]
    assert f"job 2 (exit code 1), log {tmp_path}/log/probe.2.log: ERROR: " in p.stderr
    assert "best.pt" in p.stderr
