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
