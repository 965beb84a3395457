"""Stacks of EUPS products, ``lsst_distrib``: one someone installed (``existing``, e.g. on CVMFS),
or Rubin's ``lsstinstall`` onto (shared) storage, then adopted the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from pathlib import Path

from lsst_on_aws.stack.common import (
    StackError,
    in_stack,
    install_tasks,
    parse_eups_setup,
    probe_stack,
    tree_digest,
    write_activation,
)

# written last by an lsstinstall install: its presence means the install completed
LSSTINSTALL_DONE = ".lsstinstall-complete"


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
        found = in_stack(
            activate, 'python -c "import sys, lsst.daf.butler, lsst.pipe.base; print(sys.executable)"', log
        )
    except StackError as err:
        raise StackError(
            f"the stack activated by {activate} does not provide the LSST middleware"
            f" (lsst.daf.butler, lsst.pipe.base): {err}"
        ) from None
    python = found.strip().splitlines()[-1]
    shutil.rmtree(tasks, ignore_errors=True)
    install_tasks(python, tasks_dir, log, target=tasks)
    probe, eups_text = probe_stack(activate, log)
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
