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
