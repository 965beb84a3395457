"""What every stack method shares: finding uv and Python, running install steps logged, the
activation prefix, and probing an activated stack for what it holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


class StackError(RuntimeError):
    """The stack cannot be installed as configured."""


def install_tasks(python: str, tasks_dir: Path, log, target: Path | None = None) -> None:
    """Install the project's task package into the stack whose interpreter is ``python`` (into
    ``target``, a folder of its own, when given), not editable: the stack holds a snapshot of the
    tasks, as a real install would.

    It is installed from a copy in a temporary folder: a non-editable install builds in the
    source folder (setuptools' ``build/``), and the workflow's own files stay as they were.
    """
    command = [find_uv(), "pip", "install", "--quiet", "--no-deps", "--compile-bytecode", "--python", python]
    command += ["--target", str(target)] if target is not None else []
    with tempfile.TemporaryDirectory(prefix="lsst-on-aws-tasks-") as tmp:
        copy = Path(tmp) / tasks_dir.name
        shutil.copytree(tasks_dir, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        run_logged([*command, str(copy)], log, uv_env(), what="installing the project's tasks into the stack")


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
    """Path of an installed Python ``version`` (e.g. "3.12"), without downloading one.

    The interpreter the workflow itself runs on comes first, when it is that version: on a
    cluster it is the one on the shared storage that every node runs (a stack made from a
    head-node-only Python would fail on compute nodes). Then pyenv's, then the one on PATH.
    """
    candidates = []
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        candidates.append(str(Path(sys.base_prefix) / "bin" / f"python{version}"))
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


def uv_env() -> dict[str, str]:
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


def run_logged(
    cmd: list[str], log, env: dict[str, str] | None = None, what: str = "stack install step"
) -> str:
    """Run ``cmd``, log it and its output; raise `StackError` naming it if it fails."""
    log("$ " + " ".join(cmd))
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    log(run.stdout + run.stderr)
    if run.returncode != 0:
        raise StackError(f"{what} failed ({run.returncode}): {' '.join(cmd)}\n{run.stderr[-2000:]}")
    return run.stdout


# What a stack must provide, checked once it is activated: the middleware and the project's tasks.
_PROBE = """
import importlib.metadata as m, json, sys
import lsst.daf.butler, lsst.pipe.base, lsst_on_aws_tasks
print(json.dumps({
    "python": sys.version.split()[0],
    "executable": sys.executable,
    "packages": {d.metadata["Name"]: d.version for d in m.distributions()},
}))
"""


_EUPS_MARK = "--- eups list --setup ---"


def in_stack(activate: Path, command: str, log, env: dict[str, str] | None = None) -> str:
    """Run a bash ``command`` after sourcing ``activate``; its output. Raises `StackError`."""
    script = f'source "{activate}" || exit 97\n{command}'
    return run_logged(["bash", "-c", script], log, env, what=f"a command in the stack ({activate})")


def probe_stack(activate: Path, log) -> tuple[dict, str]:
    """What the activated stack provides: Python and its packages; the EUPS products set up (text)."""
    env = dict(os.environ, LSST_ON_AWS_PROBE=_PROBE)
    command = (
        'python -c "$LSST_ON_AWS_PROBE" || exit 98\n'
        f'echo "{_EUPS_MARK}"\n'
        "if command -v eups >/dev/null; then eups list --setup; fi"
    )
    try:
        out = in_stack(activate, command, log, env)
    except StackError as err:
        raise StackError(
            f"the stack activated by {activate} cannot import the project's tasks: {err}"
        ) from None
    probe_text, _, eups_text = out.partition(_EUPS_MARK)
    return json.loads(probe_text.strip().splitlines()[-1]), eups_text


def parse_eups_setup(text: str) -> dict[str, str]:
    """``eups list --setup`` lines ("name  version  [tags] setup") as name -> version."""
    products = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            products[fields[0]] = fields[1]
    return dict(sorted(products.items()))
