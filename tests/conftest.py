import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture
def shared_data():
    """../shared/data, or a skip with the reason when this checkout has no ../shared beside it."""
    d = SHARED / "data"
    if not d.is_dir():
        pytest.skip(f"{d} is absent (it exists beside the project in CI only)")
    return d


os.environ.setdefault("OMP_NUM_THREADS", "2")


# A tiny training config for end-to-end recipe tests (seconds per system).
TINY_RECIPE_CONF = """
encoder: conv_glu
encoder_conf: {channels: [32, 32, 32], kernels: [5, 3, 3], stride: 3, dropout: 0.1}
aux_conf: {spk_layer: 2, spk_weight: 0.5, spk_lambda: 0.5, lambda_schedule: constant, hidden: 32}
max_epochs: 1
batch_frames: 4000
warmup_steps: 2
"""


def copy_recipe(name: str, top) -> Path:
    """A copy of egs/<name>/asr1 in a temp tree shaped like the repo (tools/, utils/ and egs/TEMPLATE
    linked to the real ones, so ../../../tools and the recipe's symlinks resolve); returns its dir."""
    import shutil

    top = Path(top)
    top.mkdir(parents=True, exist_ok=True)
    (top / "tools").symlink_to(ROOT / "tools")
    (top / "utils").symlink_to(ROOT / "utils")
    (top / "egs").mkdir()
    (top / "egs" / "TEMPLATE").symlink_to(ROOT / "egs" / "TEMPLATE")
    d = top / "egs" / name / "asr1"
    shutil.copytree(ROOT / "egs" / name / "asr1", d, symlinks=True,
                    ignore=shutil.ignore_patterns("data", "dump", "exp", "downloads"))
    return d


# One run of the tiny mini_synth recipe per test session, shared by the modules that need a trained
# recipe (test_recipe_mini_synth, test_inference, and the local half of test_slurm's comparison): stages
# 1-5 of ./run.sh, its three systems, the word LM on as run.sh has it, --nj 2 as test_slurm's Slurm run
# has it. Training is pinned to 1 thread (as --nj 1 would make it), so it is bit-identical whatever --nj.
MINI_SYNTH_MASTER_ARGS = ("--corpus-opts", "--tiny", "--train-config", "conf/tiny.yaml", "--nj", "2",
                          "--aux", "none mtl adversarial", "--train-opts", "--set num_threads=1")


class RecipeRun:
    """A recipe dir after one ./run.sh: ``top`` (the temp tree of copy_recipe), ``dir`` (its
    egs/<name>/asr1) and ``process`` (the run's CompletedProcess: returncode, stdout, stderr)."""

    def __init__(self, top: Path, dir: Path, process):
        self.top, self.dir, self.process = top, dir, process


@pytest.fixture(scope="session")
def mini_synth_master(tmp_path_factory) -> RecipeRun:
    """The tiny mini_synth recipe run once (MINI_SYNTH_MASTER_ARGS); read it, never write into it: a test
    that changes files works on its own relocated copy (copy_recipe_run). Its returncode is not checked
    here: each user asserts on it."""
    import subprocess

    top = tmp_path_factory.mktemp("mini_synth_master")
    d = copy_recipe("mini_synth", top)
    (d / "conf" / "tiny.yaml").write_text(TINY_RECIPE_CONF)
    p = subprocess.run(["./run.sh", *MINI_SYNTH_MASTER_ARGS], cwd=d, env=dict(os.environ, OMP_NUM_THREADS="1"),
                       capture_output=True, text=True)
    return RecipeRun(top, d, p)


def copy_recipe_run(run: RecipeRun, top) -> Path:
    """A copy of ``run``'s whole temp tree at ``top`` (a new dir), as if the recipe had been run there:
    the absolute paths its files name under run.top (feats.scp's arks, wav.scp, config.yaml's cmvn and
    token list, records) are rewritten to name the copy's, and every file keeps its mtime (stage 2's
    .done checks compare them). Returns the copy's recipe dir."""
    import shutil

    top = Path(top)
    shutil.copytree(run.top, top, symlinks=True, dirs_exist_ok=True)
    olds = {str(run.top), str(run.top.resolve())}
    pairs = [(f"{o}/".encode(), f"{top}/".encode()) for o in sorted(olds, key=len, reverse=True)]
    for dirpath, dirs, files in os.walk(top):  # (not into linked dirs)
        for name in dirs + files:
            f = Path(dirpath) / name
            if f.is_symlink():  # tools/, utils/, egs/TEMPLATE and the recipe's relative links stay as they are
                target = os.readlink(f)
                for o in olds:
                    if target.startswith(o + "/"):
                        f.unlink()
                        f.symlink_to(str(top) + target[len(o):])
                        break
                continue
            if not f.is_file():
                continue
            data = f.read_bytes()
            if not any(o in data for o, _ in pairs):
                continue
            assert b"\0" not in data, f"{f}: a binary file naming {run.top}; cannot relocate it"
            st = f.stat()
            for o, n in pairs:
                data = data.replace(o, n)
            f.write_bytes(data)
            os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    return top / run.dir.relative_to(run.top)
