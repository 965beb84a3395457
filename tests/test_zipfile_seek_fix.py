"""The BPS peer leg's workaround for CPython's zipfile seek bugs (benchmarks/bps/zipfile_seek_fix.py).

Benchmark code, tested here because every saved quantum graph the leg reads depends on it. Each
check runs in a fresh interpreter of this suite's Python (3.12.1 on these machines: affected), so
that the patch applied in one does not leak into another, or into this process.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT

FIX = REPO_ROOT / "benchmarks/bps"


def fresh(code: str) -> str:
    """``code``'s output in a new interpreter that can import the fix."""
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(FIX)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ((3, 11, 9), False),
        ((3, 12, 1), True),
        ((3, 12, 8), True),
        ((3, 12, 9), False),
        ((3, 13, 0), True),
        ((3, 13, 2), False),
    ],
)
def test_affected_interpreters(version, affected):
    assert fresh(f"import zipfile_seek_fix as z; print(z.affected({version!r}))") == str(affected)


def test_the_fix_makes_a_forward_seek_read_the_right_bytes():
    """On this interpreter a forward seek in one stored member, after another member was read on,
    gives the wrong bytes; after apply(), the right ones. On a fixed interpreter both are right and
    apply() does nothing.
    """
    code = "import zipfile_seek_fix as z; before = z.reads_correctly(); applied = z.apply();"
    code += " print(before, applied, z.reads_correctly(), z.apply())"
    before, applied, after, again = fresh(code).split()
    assert after == "True" and again == "False"  # right bytes; applied at most once
    if fresh("import zipfile_seek_fix as z; print(z.affected())") == "True":
        assert (before, applied) == ("False", "True")
    else:
        assert (before, applied) == ("True", "False")
