"""Run a recorded stage again: the command of a ``<tool>.record.json`` that every stage writes beside
its outputs, in the recorded working directory, with the recorded environment variables.

    python -m asr_gr.bin.rerun exp/train_none/train.record.json [--dry-run]

Warns when the toolkit's git commit now differs from the recorded one (or either has modified
files): the rerun then uses today's code. Exits with the rerun's exit status.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

from asr_gr.bin.common import main_guard
from asr_gr.record import git_state, read_record


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("record", help="a <tool>.record.json")
    ap.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    args = ap.parse_args(argv)
    rec = read_record(args.record)
    python = rec.get("python") if rec.get("python") and os.path.exists(rec["python"]) else sys.executable
    cmd = [python, "-m", rec["tool"], *rec["argv"]]
    then, now = rec.get("git") or {}, git_state()
    if then.get("commit") != now.get("commit") or then.get("dirty") or now.get("dirty"):
        print(f"rerun: WARNING: recorded with toolkit commit {then.get('commit')}"
              f"{' (modified)' if then.get('dirty') else ''}, now {now.get('commit')}"
              f"{' (modified)' if now.get('dirty') else ''}", file=sys.stderr)
    print(f"rerun: cd {shlex.quote(rec['cwd'])} && {shlex.join(cmd)}", file=sys.stderr)
    if args.dry_run:
        return
    env = dict(os.environ, **(rec.get("env") or {}))
    sys.exit(subprocess.run(cmd, cwd=rec["cwd"], env=env).returncode)


if __name__ == "__main__":
    main()
