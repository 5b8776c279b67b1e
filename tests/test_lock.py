"""One writer per output dir: a second training/decoding/extraction refuses, naming the holder; a
SIGKILLed holder leaves no stale lock."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from asr_gr.bin import compute_fbank, decode, import_feats, probe, train
from asr_gr.lock import dir_lock
from asr_gr.utils import LockedError

HOLD = "import sys, time; from asr_gr.lock import dir_lock\nwith dir_lock(sys.argv[1]):\n" \
       "    print('locked', flush=True); time.sleep(120)\n"


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds the lock of a dir; yields (dir, process)."""
    procs = []

    def start(d):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(p) for p in sys.path if p]))
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdout=subprocess.PIPE, text=True, env=env)
        assert p.stdout.readline().strip() == "locked"
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_second_writer_refuses_naming_the_holder_and_sigkill_frees(tmp_path, holder):
    d = tmp_path / "out"
    p = holder(d)
    with pytest.raises(LockedError) as e:
        with dir_lock(d, "exp dir"):
            pass
    msg = str(e.value)
    assert f"exp dir is in use by pid {p.pid} on host {socket.gethostname()}, started 20" in msg
    assert "\n" not in msg
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert (d / ".lock").exists()  # the file of the killed holder stays, but nobody holds it
    with dir_lock(d) as path:
        assert f"pid {os.getpid()} " in path.read_text()
    assert not (d / ".lock").exists()  # released: removed


def test_lock_is_released_on_error_and_a_fresh_dir_is_not_left_behind(tmp_path):
    d = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with dir_lock(d):
            raise RuntimeError("boom")
    assert not d.exists()
    with dir_lock(d):
        (d / "out.txt").write_text("x")
    assert (d / "out.txt").exists() and not (d / ".lock").exists()


@pytest.mark.parametrize("tool", ["train", "decode", "probe", "compute_fbank", "import_feats"])
def test_every_writer_refuses_a_held_dir(tmp_path, holder, capsys, tool):
    out = tmp_path / "out"
    argv = {
        "train": (train.main, ["--exp-dir", str(out), "--train-dir", str(tmp_path / "train"), "--valid-dir", "v",
                               "--token-list", "x",
                               "--cmvn", str(tmp_path / "cmvn.ark")], out),
        "decode": (decode.main, ["--exp-dir", "e", "--data-dir", "d", "--out-dir", str(out)], out),
        "probe": (probe.main, ["--exp-dir", str(tmp_path), "--data-dir", "d"], tmp_path / "probe_d"),
        "compute_fbank": (compute_fbank.main, ["--data-dir", str(tmp_path / "data"), "--out-dir", str(out)], out),
        "import_feats": (import_feats.main, ["--data-dir", "d", "--out-dir", str(out)], out),
    }
    main, args, locked = argv[tool]
    if tool == "train":  # features and CMVN are checked (for the model check) before the exp dir is touched
        import kaldiio
        import numpy as np
        from tiny_data import make_dump
        make_dump(tmp_path, "train")
        kaldiio.save_mat(str(tmp_path / "cmvn.ark"), np.ones((2, 14)))
    if tool == "compute_fbank":  # validated before the lock: give it a valid (tiny) data dir
        from test_bad_input import _data_dir
        _data_dir(tmp_path)
    p = holder(locked)
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if "ERROR" in ln]
    assert len(err) == 1 and f"is in use by pid {p.pid} on host" in err[0], err
    assert sorted(x.name for x in locked.iterdir()) == [".lock"]  # nothing written beside the holder's lock
