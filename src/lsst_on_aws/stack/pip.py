"""The ``pip`` stack: a virtual environment built with uv from a lock file (the LSST middleware
from PyPI, no ``lsst_distrib``) plus the project's task package.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

from lsst_on_aws.stack.common import (
    StackError,
    find_python,
    find_uv,
    install_tasks,
    installed_packages,
    run_logged,
    tree_digest,
    uv_env,
    write_activation,
)


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
    # a venv left by an earlier install of this tag is rebuilt from the lock, not patched
    shutil.rmtree(venv, ignore_errors=True)
    env = uv_env()
    run_logged([uv, "venv", "--quiet", "--python", python, str(venv)], log, env)
    # bytecode compiled once here, not by every job that imports the stack: where .pyc files cannot
    # be written (a read-only shared install, PYTHONDONTWRITEBYTECODE) each process would compile
    # the middleware's modules from source, about 3.5 s of CPU (benchmarks/startup.py)
    sync = [uv, "pip", "sync", "--quiet", "--compile-bytecode", "--python", str(venv / "bin" / "python")]
    run_logged([*sync, str(lock)], log, env)
    install_tasks(str(venv / "bin" / "python"), tasks_dir, log)
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
