"""Shared test set-up.

The repository root *is* the plugin package.  Tests import it as
``geochem_fusion`` through a symlink in ``.pkg/`` (never through the
checkout folder's own name), created here on first use.
"""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG_DIR = REPO / ".pkg"
LINK = PKG_DIR / "geochem_fusion"
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

if not LINK.exists():
    PKG_DIR.mkdir(exist_ok=True)
    try:
        LINK.symlink_to(REPO, target_is_directory=True)
    except FileExistsError:  # another process made it first
        pass
if str(PKG_DIR) not in sys.path:
    sys.path.insert(0, str(PKG_DIR))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def shared_data():
    """Path of ``../shared/data``; skips the test cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (only present in the team workspace/CI)")
    return SHARED_DATA
