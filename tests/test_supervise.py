"""utils/supervise.sh: stopping a driver script stops the command it is running (bash alone would let
the foreground command run on after the driver was sent SIGTERM)."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

SUPERVISE = Path(__file__).resolve().parents[1] / "utils" / "supervise.sh"

DRIVER = """#!/usr/bin/env bash
set -euo pipefail
. {supervise} "$@"
echo "args: $*"
python3 -c "import os, time; open('stage.pid', 'w').write(str(os.getpid())); time.sleep(300)"
echo finished > after.txt
"""


def _driver(tmp_path, body=DRIVER):
    script = tmp_path / "driver.sh"
    script.write_text(body.format(supervise=SUPERVISE))
    script.chmod(0o755)
    return script


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_driver_stops_its_running_stage(tmp_path, sig):
    # A shell started in the background (nohup ... &, as CI may run the suite) ignores SIGINT, and bash
    # cannot trap a signal ignored on entry: start the driver as from a terminal, SIGINT at its default.
    p = subprocess.Popen([str(_driver(tmp_path)), "a b", "c"], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pid_file = tmp_path / "stage.pid"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    stage = int(pid_file.read_text())
    p.send_signal(sig)
    assert p.wait(timeout=20) == 128 + sig
    for _ in range(100):
        if not _alive(stage):
            break
        time.sleep(0.05)
    assert not _alive(stage), "the stage the driver was running outlived it"
    assert not (tmp_path / "after.txt").exists()
    assert p.stdout.read() == "args: a b c\n"  # arguments pass through unchanged


def test_the_exit_status_of_the_script_is_the_drivers(tmp_path):
    script = _driver(tmp_path, "#!/usr/bin/env bash\nset -euo pipefail\n. {supervise} \"$@\"\n"
                               "echo \"supervised by $_ASR_GR_SUPERVISOR\"\nexit 3\n")
    r = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and r.stdout.startswith("supervised by ") and r.stderr == ""
