"""Install the LSST stack and describe what was installed.

Every stack method (``pip`` here; ``lsstinstall`` and ``existing`` on a
cluster) produces the same two files:

- ``activate.sh``, the one activation prefix that every LSST step sources,
  as a real install is activated with ``source loadLSST.bash; setup
  lsst_distrib``;
- ``manifest.json``: method, tag, Python, every installed package and its
  version, and when it was installed.

In ``pip`` mode the stack is a virtual environment built with uv from a
lock file (``envs/stack-pip/<tag>.lock``) plus the project's task package.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


class StackError(RuntimeError):
    """The stack cannot be installed as configured."""


def find_uv() -> str:
    """The uv executable beside the running interpreter, else on PATH."""
    here = Path(sys.executable).parent / "uv"
    if here.exists():
        return str(here)
    found = shutil.which("uv")
    if not found:
        raise StackError("uv is not installed in the workflow environment; run `make env`")
    return found


def find_python(version: str) -> str:
    """Path of an installed Python ``version`` (e.g. "3.12"), without downloading one."""
    candidates = []
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "prefix", version], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(str(Path(out.stdout.strip().splitlines()[0]) / "bin" / f"python{version}"))
    found = shutil.which(f"python{version}")
    if found:
        candidates.append(found)
    for cand in candidates:
        ok = subprocess.run([cand, "-c", "import sys"], capture_output=True, check=False)
        if ok.returncode == 0:
            return cand
    raise StackError(f"Python {version} is not installed here (looked with pyenv and on PATH)")


def tree_digest(root: Path) -> str:
    """SHA-256 over a source tree's Python and TOML files (names and contents)."""
    h = hashlib.sha256()
    for path in sorted(
        p for p in root.rglob("*") if p.suffix in {".py", ".toml"} and "egg-info" not in str(p)
    ):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _uv_env() -> dict[str, str]:
    env = dict(os.environ)
    # the machine's own CA bundle (proxies), and never download a Python
    env.setdefault("UV_NATIVE_TLS", "1")
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env.pop("VIRTUAL_ENV", None)
    return env


def installed_packages(python: str) -> dict[str, str]:
    """Every distribution importable by ``python``, name -> version."""
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return dict(sorted(json.loads(out.stdout).items(), key=lambda kv: kv[0].lower()))


def write_activation(path: Path, lines: list[str]) -> None:
    """Write the activation prefix, a bash snippet every LSST step sources."""
    path.write_text("\n".join(lines) + "\n")


def install_pip_stack(
    prefix: Path, tag: str, lock: Path, tasks_dir: Path, python_version: str, log=print
) -> dict:
    """Create ``prefix/venv`` from ``lock`` plus the task package; write activate.sh and manifest.json.

    Returns the manifest.
    """
    if not lock.exists():
        raise StackError(f"no lock file {lock} for stack tag {tag}")
    t0 = time.monotonic()
    uv = find_uv()
    python = find_python(python_version)
    venv = prefix / "venv"
    env = _uv_env()
    commands = [
        [uv, "venv", "--quiet", "--python", python, str(venv)],
        [uv, "pip", "sync", "--quiet", "--python", str(venv / "bin" / "python"), str(lock)],
        # not editable: the stack holds a snapshot of the tasks, as a real install would
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--python",
            str(venv / "bin" / "python"),
            str(tasks_dir.absolute()),
        ],
    ]
    for cmd in commands:
        log("$ " + " ".join(cmd))
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        log(run.stdout + run.stderr)
        if run.returncode != 0:
            raise StackError(f"stack install step failed ({run.returncode}): {' '.join(cmd)}\n{run.stderr}")
    activate = prefix / "activate.sh"
    write_activation(
        activate,
        [
            f"# LSST stack, pip mode, tag {tag}: source this before any LSST command.",
            f'export LSST_STACK_TAG="{tag}"',
            "export LSST_STACK_METHOD=pip",
            f'source "{venv.absolute()}/bin/activate"',
        ],
    )
    stack_python = str(venv / "bin" / "python")
    version = subprocess.run(
        [stack_python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    manifest = {
        "method": "pip",
        "tag": tag,
        "python": version,
        "prefix": str(prefix.absolute()),
        "activate": str(activate.absolute()),
        "lock": str(lock),
        "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest(),
        "tasks_sha256": tree_digest(tasks_dir),
        "packages": installed_packages(stack_python),
        "installed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "install_seconds": round(time.monotonic() - t0, 1),
    }
    (prefix / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
