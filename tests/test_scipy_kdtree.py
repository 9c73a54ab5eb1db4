"""The coverage engine loads SciPy's k-d tree extension by file (a short `coverage compute` saves
the rest of `scipy.spatial`): it must be SciPy's own class, and a later public import must reuse it.
Fails loudly when SciPy moves the file, instead of the engine silently paying the slow import."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from zhongdu.coverage._engine import _kdtree_class
cls = _kdtree_class()
assert "scipy.spatial" not in sys.modules, "fell back to the public import: SciPy moved _ckdtree"
assert cls.__module__ == "scipy.spatial._ckdtree", cls.__module__
import scipy.spatial
assert scipy.spatial.cKDTree is cls, "scipy.spatial loaded a second copy of the extension"
import numpy as np
points = np.random.default_rng(1).random((200, 2))
assert (cls(points).query(points[:5])[1] == np.arange(5)).all()
print("ok")
"""


def test_kdtree_loaded_by_file_is_scipys_own_and_shared() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
