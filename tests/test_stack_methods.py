"""The stack methods besides pip: ``existing`` (a stack someone installed) and ``lsstinstall``.

The "installed stack" here is the embedded default's pip stack (real LSST
middleware) behind a ``loadLSST.bash`` that activates it, as a CVMFS or site
install's script activates ``lsst_distrib``. Where the emulation stops:

- EUPS cannot be installed on this machine (it is not on PyPI, and its
  packages come from eups.lsst.codes), so where a test needs ``setup`` of a
  product, its ``loadLSST.bash`` defines a ``setup`` shell function that
  records its arguments and does nothing else;
- ``lsstinstall`` itself downloads conda and the stack from the internet,
  which tests never reach: the tests cover its script, its failure (the
  download URL is a closed port on 127.0.0.1), and the reuse of an install
  that completed; the install itself is not run here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import REPO_ROOT, STACK_TAG, copy_workflow, free_port, snakemake

from lsst_on_aws.stack.common import StackError, parse_eups_setup
from lsst_on_aws.stack.eups import (
    LSSTINSTALL_DONE,
    adopt_loaded_stack,
    install_lsstinstall_stack,
    lsstinstall_script,
)

TASKS = REPO_ROOT / "tasks"


def load_script(
    path: Path, venv: Path, setup_calls: Path | None = None, exports: dict[str, Path] | None = None
) -> Path:
    """A loadLSST.bash activating ``venv``; with ``setup_calls``, a stand-in ``setup`` recording its args;
    with ``exports``, products' ``*_DIR`` variables as ``setup`` would set them.
    """
    lines = ["# stand-in for an installed stack's loadLSST.bash", f'source "{venv}/bin/activate"']
    lines += [f'export {name}="{value}"' for name, value in (exports or {}).items()]
    if setup_calls is not None:
        lines += [f'setup() {{ echo "$*" >> "{setup_calls}"; }}']
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def installed_venv(demo_run) -> Path:
    return demo_run / "resources" / "stack" / STACK_TAG / "venv"


def test_existing_stack_is_adopted_with_the_tasks_beside_it(tmp_path, installed_venv):
    calls = tmp_path / "setup-calls.txt"
    script = load_script(tmp_path / "site" / "loadLSST.bash", installed_venv, calls)
    prefix = tmp_path / "stacks" / "w_2026_40"

    manifest = adopt_loaded_stack(prefix, "w_2026_40", script, ["lsst_distrib"], TASKS, log=lambda _: None)

    assert manifest["method"] == "existing"
    assert manifest["load_script"] == str(script)
    assert manifest["python"].startswith("3.12")
    assert "lsst-daf-butler" in manifest["packages"]
    assert manifest["eups_products"] == {}  # no eups command here
    assert set(calls.read_text().splitlines()) == {"lsst_distrib"}
    # the tasks are a snapshot in prefix/tasks, importable after activation
    assert (prefix / "tasks" / "lsst_on_aws_tasks" / "process_visit.py").exists()
    out = subprocess.run(
        [
            "bash",
            "-c",
            f'source "{prefix}/activate.sh"'
            ' && python -c "import lsst_on_aws_tasks; print(lsst_on_aws_tasks.__file__)"',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().startswith(str(prefix / "tasks"))
    assert json.loads((prefix / "manifest.json").read_text()) == manifest


def test_missing_load_script_is_named(tmp_path):
    with pytest.raises(
        StackError, match=r"load script .*/nowhere/loadLSST.bash does not exist.*stack.load_script"
    ):
        adopt_loaded_stack(
            tmp_path / "s", "t", tmp_path / "nowhere/loadLSST.bash", [], TASKS, log=lambda _: None
        )


def test_a_load_script_without_the_middleware_is_refused(tmp_path):
    script = tmp_path / "loadLSST.bash"
    script.write_text("# activates nothing\n")
    with pytest.raises(StackError, match="does not provide the LSST middleware"):
        adopt_loaded_stack(tmp_path / "s", "t", script, [], TASKS, log=lambda _: None)


def test_eups_setup_listing_is_parsed():
    text = (
        "   afw                   g1a2b3c+1   \tcurrent w_2026_40 setup\n"
        "   daf_butler            gfedcba+2   \tcurrent w_2026_40 setup\n\n"
    )
    assert parse_eups_setup(text) == {"afw": "g1a2b3c+1", "daf_butler": "gfedcba+2"}


def test_lsstinstall_script_follows_rubins_steps():
    script = lsstinstall_script("w_2026_40", ["lsst_distrib", "drp_pipe"], "https://ls.st/lsstinstall")
    steps = [line for line in script.splitlines() if line and not line.startswith("set ")]
    assert steps[0].startswith('curl -fsSL --retry 3 -o lsstinstall "https://ls.st/lsstinstall"')
    assert steps[1:5] == [
        "bash lsstinstall -T w_2026_40",
        "source loadLSST.bash",
        "eups distrib install -t w_2026_40 lsst_distrib",
        "eups distrib install -t w_2026_40 drp_pipe",
    ]
    assert "shebangtron" in steps[5]
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_failed_lsstinstall_names_the_tag_and_leaves_no_completed_install(tmp_path):
    prefix = tmp_path / "w_2026_40"
    prefix.mkdir()
    (prefix / "half-downloaded.tar").write_text("debris of an earlier attempt")
    url = f"http://127.0.0.1:{free_port()}/lsstinstall"

    with pytest.raises(StackError, match=r"lsstinstall install of w_2026_40 into .* failed") as err:
        install_lsstinstall_stack(prefix, "w_2026_40", ["lsst_distrib"], TASKS, url, log=lambda _: None)

    assert "removed when the rule is run again" in str(err.value)
    assert not (prefix / LSSTINSTALL_DONE).exists()
    assert not (prefix / "half-downloaded.tar").exists()  # an incomplete install is started afresh


def test_completed_lsstinstall_is_reused_without_downloading(tmp_path, installed_venv):
    """A second cluster on the same shared storage finds the install and does not pay for it again."""
    prefix = tmp_path / "shared" / "lsst-stack" / "w_2026_40"
    calls = tmp_path / "setup-calls.txt"
    load_script(prefix / "loadLSST.bash", installed_venv, calls)
    (prefix / LSSTINSTALL_DONE).write_text(json.dumps({"tag": "w_2026_40", "products": ["lsst_distrib"]}))
    unreachable = f"http://127.0.0.1:{free_port()}/lsstinstall"

    manifest = install_lsstinstall_stack(
        prefix, "w_2026_40", ["lsst_distrib"], TASKS, unreachable, log=lambda _: None
    )

    assert manifest["method"] == "lsstinstall"
    assert manifest["reused_install"] is True
    assert set(calls.read_text().splitlines()) == {"-t w_2026_40 lsst_distrib"}  # every activation
    assert "lsst-daf-butler" in manifest["packages"]


def test_workflow_processes_a_visit_in_an_existing_stack_with_its_pipeline(tmp_path, installed_venv):
    """``stack.method: existing`` and a pipeline the stack provides, named through its product's variable.

    install_stack adopts the stack; the Butler steps and the per-visit command
    run in it, unchanged, with ``pipeline.file`` set as it is for lsst_distrib's
    ``$DRP_PIPE_DIR/pipelines/<instrument>/<pipeline>.yaml#<labels>``: the
    variable is resolved, and the subset chosen, only inside the stack. The
    product here is a folder holding the project's own pipeline (drp_pipe is
    not installable here; see the module docstring). A subset without the
    datasets the per-visit export reads is refused before any visit runs.
    """
    workdir = copy_workflow(tmp_path / "workflow")
    product = tmp_path / "site" / "pipe_product"
    (product / "pipelines").mkdir(parents=True)
    (product / "pipelines" / "single-visit.yaml").write_text(
        (REPO_ROOT / "pipelines/single-visit.yaml").read_text()
    )
    script = load_script(
        tmp_path / "site" / "loadLSST.bash", installed_venv, exports={"PIPE_PRODUCT_DIR": product}
    )
    stacks = tmp_path / "shared" / "lsst-stack"
    settings = [
        f"stack={{'method': 'existing', 'tag': 'site', 'load_script': '{script}',"
        f" 'products': [], 'prefix': '{stacks}'}}",
        "pipeline={'file': '$PIPE_PRODUCT_DIR/pipelines/single-visit.yaml#isr,measure,visitSummary'}",
        "process_visits=[1]",
    ]

    result = snakemake(workdir, "--cores", "2", "results/batches/1-1/batch.json", "--config", *settings)

    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((stacks / "site" / "manifest.json").read_text())
    assert manifest["method"] == "existing"
    assert not (workdir / "resources" / "stack").exists()
    record = json.loads((workdir / "results/butler/instrument.json").read_text())
    assert record["instrument"] == "SimCam"  # written by the tasks inside the adopted stack
    dataset_types = json.loads((workdir / "results/butler/dataset_types.json").read_text())
    assert (
        dataset_types["pipeline"]
        == str(product / "pipelines/single-visit.yaml") + "#isr,measure,visitSummary"
    )
    assert dataset_types["tasks"] == ["isr", "measure", "visitSummary"]
    summary = json.loads((workdir / "results/visits/1/summary.json").read_text())
    assert summary["status"] == "ok" and summary["n_sources"] > 100

    # a subset that does not write what the per-visit export reads is refused before any visit runs
    settings[1] = "pipeline={'file': '$PIPE_PRODUCT_DIR/pipelines/single-visit.yaml#isr,measure'}"
    result = snakemake(workdir, "--cores", "1", "results/butler/dataset_types.json", "--config", *settings)
    assert result.returncode != 0
    log = (workdir / "logs/butler/register_dataset_types.log").read_text()
    assert (
        f"pipeline {product}/pipelines/single-visit.yaml#isr,measure does not write visit_summary_stats"
        in log
    )
