"""Install the LSST stack and describe what was installed.

Every stack method produces, in the stack's folder ``<prefix>/<tag>/``, the
same two files:

- ``activate.sh``, the one activation prefix that every LSST step sources,
  as a real install is activated with ``source loadLSST.bash; setup
  lsst_distrib``;
- ``manifest.json``: method, tag, Python, every installed Python package and
  its version (and the EUPS products set up, where there are any), and when
  it was installed.

The methods:

``pip``
    a virtual environment built with uv from a lock file
    (``envs/stack-pip/<tag>.lock``) plus the project's task package: the LSST
    middleware from PyPI, no ``lsst_distrib``.
``existing``
    a stack installed by someone else (CVMFS, a site install): a
    ``loadLSST.*`` script to source, then ``setup`` of the configured EUPS
    products. The project's task package goes into ``<prefix>/<tag>/tasks``.
``lsstinstall``
    the current Rubin method, onto (shared) storage: ``lsstinstall -T <tag>``
    then ``eups distrib install -t <tag> <products>`` in ``<prefix>/<tag>/``;
    after that, as ``existing`` with that folder's ``loadLSST.bash``. An
    install that completed (``.lsstinstall-complete``, written last) is found
    and reused: a second cluster with the same storage does not pay for it
    again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class StackError(RuntimeError):
    """The stack cannot be installed as configured."""


@contextmanager
def snapshot(tasks_dir: Path) -> Iterator[Path]:
    """A copy of the task package's source in a temporary folder, to install from.

    A non-editable install builds in the source folder (setuptools' ``build/``);
    building the copy leaves the workflow's own files as they were.
    """
    with tempfile.TemporaryDirectory(prefix="lsst-on-aws-tasks-") as tmp:
        copy = Path(tmp) / tasks_dir.name
        shutil.copytree(tasks_dir, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        yield copy


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


def _run_logged(
    cmd: list[str], log, env: dict[str, str] | None = None, what: str = "stack install step"
) -> str:
    """Run ``cmd``, log it and its output; raise `StackError` naming it if it fails."""
    log("$ " + " ".join(cmd))
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    log(run.stdout + run.stderr)
    if run.returncode != 0:
        raise StackError(f"{what} failed ({run.returncode}): {' '.join(cmd)}\n{run.stderr[-2000:]}")
    return run.stdout


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
    env = _uv_env()
    _run_logged([uv, "venv", "--quiet", "--python", python, str(venv)], log, env)
    _run_logged([uv, "pip", "sync", "--quiet", "--python", str(venv / "bin" / "python"), str(lock)], log, env)
    # not editable: the stack holds a snapshot of the tasks, as a real install would
    with snapshot(tasks_dir) as source:
        install = [uv, "pip", "install", "--quiet", "--no-deps", "--python", str(venv / "bin" / "python")]
        _run_logged([*install, str(source)], log, env)
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
# written last by an lsstinstall install: its presence means the install completed
LSSTINSTALL_DONE = ".lsstinstall-complete"


def _in_stack(activate: Path, command: str, log, env: dict[str, str] | None = None) -> str:
    """Run a bash ``command`` after sourcing ``activate``; its output. Raises `StackError`."""
    script = f'source "{activate}" || exit 97\n{command}'
    return _run_logged(["bash", "-c", script], log, env, what=f"a command in the stack ({activate})")


def _probe(activate: Path, log) -> tuple[dict, str]:
    """What the activated stack provides: Python and its packages; the EUPS products set up (text)."""
    env = dict(os.environ, LSST_ON_AWS_PROBE=_PROBE)
    command = (
        'python -c "$LSST_ON_AWS_PROBE" || exit 98\n'
        f'echo "{_EUPS_MARK}"\n'
        "if command -v eups >/dev/null; then eups list --setup; fi"
    )
    try:
        out = _in_stack(activate, command, log, env)
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


def _activation_lines(
    method: str, tag: str, load_script: Path, products: list[str], setup_tag: bool, tasks: Path
):
    setup = [f"setup {'-t ' + tag + ' ' if setup_tag else ''}{product}" for product in products]
    return [
        f"# LSST stack, {method} mode, tag {tag}: source this before any LSST command.",
        f'export LSST_STACK_TAG="{tag}"',
        f"export LSST_STACK_METHOD={method}",
        f'source "{load_script}"',
        *setup,
        "# the project's tasks, installed beside the stack",
        f'export PYTHONPATH="{tasks}${{PYTHONPATH:+:$PYTHONPATH}}"',
    ]


def adopt_loaded_stack(
    prefix: Path,
    tag: str,
    load_script: Path,
    products: list[str],
    tasks_dir: Path,
    method: str = "existing",
    setup_tag: bool = False,
    log=print,
    extra: dict | None = None,
) -> dict:
    """Adopt the stack that ``load_script`` and ``setup`` of ``products`` activate.

    Writes activate.sh and manifest.json in ``prefix``.

    The project's task package is installed into ``prefix/tasks`` with the
    stack's own Python; the activated stack must then import the LSST
    middleware and the tasks. Returns the manifest.
    """
    t0 = time.monotonic()
    load_script = load_script.absolute()
    if not load_script.is_file():
        raise StackError(
            f"the stack's load script {load_script} does not exist on this machine"
            " (config key stack.load_script: a loadLSST.bash of an installed stack)"
        )
    prefix.mkdir(parents=True, exist_ok=True)
    tasks = prefix.absolute() / "tasks"
    activate = prefix / "activate.sh"
    write_activation(activate, _activation_lines(method, tag, load_script, products, setup_tag, tasks))
    try:
        found = _in_stack(
            activate, 'python -c "import sys, lsst.daf.butler, lsst.pipe.base; print(sys.executable)"', log
        )
    except StackError as err:
        raise StackError(
            f"the stack activated by {activate} does not provide the LSST middleware"
            f" (lsst.daf.butler, lsst.pipe.base): {err}"
        ) from None
    python = found.strip().splitlines()[-1]
    shutil.rmtree(tasks, ignore_errors=True)
    with snapshot(tasks_dir) as source:
        install = [find_uv(), "pip", "install", "--quiet", "--no-deps", "--python", python]
        _run_logged(
            [*install, "--target", str(tasks), str(source)],
            log,
            _uv_env(),
            what="installing the project's tasks into the stack",
        )
    probe, eups_text = _probe(activate, log)
    manifest = {
        "method": method,
        "tag": tag,
        "python": probe["python"],
        "prefix": str(prefix.absolute()),
        "activate": str(activate.absolute()),
        "load_script": str(load_script),
        "setup": products,
        "tasks_sha256": tree_digest(tasks_dir),
        "packages": dict(sorted(probe["packages"].items(), key=lambda kv: kv[0].lower())),
        "eups_products": parse_eups_setup(eups_text),
        **(extra or {}),
        "installed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "install_seconds": round(time.monotonic() - t0, 1),
    }
    (prefix / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


SHEBANGTRON_URL = "https://raw.githubusercontent.com/lsst/shebangtron/main/shebangtron"


def lsstinstall_script(tag: str, products: list[str], url: str) -> str:
    """Rubin's documented install of ``products`` at ``tag``, as a bash script run in the stack's folder."""
    return "\n".join(
        [
            "set -euo pipefail",
            f'curl -fsSL --retry 3 -o lsstinstall "{url}"',
            f"bash lsstinstall -T {tag}",
            "set +u  # loadLSST.bash and eups use unset variables",
            "source loadLSST.bash",
            *(f"eups distrib install -t {tag} {product}" for product in products),
            # fixes the installed scripts' #! lines (Rubin's install instructions)
            f'curl -fsSL --retry 3 "{SHEBANGTRON_URL}" | python',
            "",
        ]
    )


def install_lsstinstall_stack(
    prefix: Path, tag: str, products: list[str], tasks_dir: Path, url: str, log=print
) -> dict:
    """Install ``products`` at ``tag`` with lsstinstall into ``prefix``, or reuse a completed install there.

    ``prefix/.lsstinstall-complete`` (written last, naming the tag and the
    products) marks a completed install: with the same products it is reused
    as it is. Anything else in ``prefix`` is a partial or different install
    and is removed first. Returns the manifest.
    """
    prefix.mkdir(parents=True, exist_ok=True)
    done = prefix / LSSTINSTALL_DONE
    wanted = {"tag": tag, "products": products}
    recorded = json.loads(done.read_text()) if done.exists() else None
    reused = recorded is not None and {k: recorded.get(k) for k in wanted} == wanted
    if reused:
        log(f"reusing the lsstinstall install of {tag} ({', '.join(products)}) completed in {prefix}")
    else:
        for child in prefix.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        steps = prefix / "lsstinstall-steps.sh"
        steps.write_text(lsstinstall_script(tag, products, url))
        log(f"installing {', '.join(products)} at {tag} with lsstinstall into {prefix}")
        run = subprocess.run(
            ["bash", str(steps.name)], cwd=prefix, capture_output=True, text=True, check=False
        )
        log(run.stdout + run.stderr)
        if run.returncode != 0:
            raise StackError(
                f"the lsstinstall install of {tag} into {prefix} failed ({run.returncode});"
                f" its output is in the log, the last lines:\n{run.stderr[-1500:]}"
                "\nThe partial install is removed when the rule is run again."
            )
        done.write_text(
            json.dumps({**wanted, "completed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
            + "\n"
        )
    return adopt_loaded_stack(
        prefix,
        tag,
        prefix / "loadLSST.bash",
        products,
        tasks_dir,
        method="lsstinstall",
        setup_tag=True,
        log=log,
        extra={"lsstinstall_url": url, "reused_install": reused},
    )
