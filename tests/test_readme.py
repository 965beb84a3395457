"""Every ``snakemake`` and ``make`` command the README and ``docs/`` show, run as a user types it.

The commands are read out of the documents themselves (fenced ``bash`` blocks,
and inline code that starts with ``snakemake``, ``.venv/bin/snakemake`` or
``make``), so a command added to a page later is run here without anyone
remembering to. Placeholders are replaced by well-formed values
(`PLACEHOLDERS`), and profiles resolve by name from a home folder where
``make profiles`` (part of ``make env``) linked them (conftest.user_home).

How each command runs:

- ``--profile aws`` would reach AWS: a dry run, with AWS pointed at a closed
  port on 127.0.0.1, that must plan only the control plane's steps (`CONTROL_PLANE`)
  and none of the analysis. The commands run in a copy that holds what a
  finished AWS run fetched (remote.fetch), so a target such as the bill plans
  only itself.
- other ``snakemake`` commands: for real where it is cheap and leaves the
  shared demo run as it was (`REAL`), else a dry run in a fresh copy that must
  plan the data plane's steps and none of the control plane's.
- ``make`` targets: ``make demo`` is the session's demo run (conftest.demo_run);
  the others for real where cheap (`make_lint`, ...), and ``make test`` is this
  suite itself (``.ci/run`` runs exactly it).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import (
    REPO_ROOT,
    copy_workflow,
    planned_jobs,
    run_in,
    snakemake_env,
)

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# placeholder -> a well-formed value of its kind
PLACEHOLDERS = {
    "subnet-...": "subnet-0123456789abcdef0",
    "vol-...": "vol-0123456789abcdef0",
    "<name>": "lsst-on-aws",
    "<visit>": "1",
    "<batch>": "1-1",
    "<id>": "vol-0123456789abcdef0",
    "<region>": "us-east-1",
    "{config}": "config/config.yaml",
}
COMMAND = re.compile(r"^(\.venv/bin/snakemake|snakemake|make)(\s|$)")
# what a drive of a new cluster plans
DRIVE = [
    "estimate_cost",
    "cluster_config",
    "validate_cluster",
    "create_cluster",
    "sync_workflow",
    "remote_run",
    "fetch_results",
    "teardown",
    "cluster_costs",
    "all",
]
# every rule of the control plane (control-plane.smk)
CONTROL_PLANE = {*DRIVE, "delete_cluster", "delete_storage", "actual_bill"}
# snakemake commands run for real in the demo run: they change nothing another test reads
REAL = ("--report", "--unlock", "--lint")
# a closed port on loopback: an AWS call in a dry run would fail here, never leave the machine
NO_AWS = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}


def shown_commands(text: str) -> list[str]:
    """The snakemake and make commands a Markdown page shows, in order, as written."""
    commands = []
    for block in re.findall(r"^```(?:bash|sh|console)\n(.*?)^```", text, flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if COMMAND.match(line):
                commands.append(re.sub(r"\s+", " ", line))
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    commands += [span.strip() for span in re.findall(r"`([^`\n]+)`", prose) if COMMAND.match(span.strip())]
    return list(dict.fromkeys(commands))


def as_typed(command: str) -> str:
    """The command with its placeholders replaced by well-formed values."""
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    return command


def shown() -> list[tuple[str, str]]:
    """(page, command) for every command of every page."""
    return [(page.name, command) for page in PAGES for command in shown_commands(page.read_text())]


def run(workdir: Path, command: str, env: dict | None = None, timeout: float = 900):
    """``command`` in bash in ``workdir``, as the user's shell would run it."""
    return run_in(workdir, ["bash", "-c", command], timeout, env)


def beside_shared(workdir: Path) -> Path:
    """``workdir`` with ``../shared`` beside it, as the repository has it (config/decam.yaml reads there)."""
    shared = workdir.parent / "shared"
    if not shared.exists():
        shared.symlink_to(REPO_ROOT.parent / "shared")
    return workdir


def set_up(workdir: Path) -> Path:
    """``make env`` in ``workdir``, as the README asks before its other commands."""
    result = run(workdir, "make env")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """A fresh copy of the workflow, set up: nothing has run."""
    return set_up(beside_shared(copy_workflow(tmp_path_factory.mktemp("readme") / "workflow")))


@pytest.fixture(scope="module")
def fetched(demo_run, tmp_path_factory) -> Path:
    """A fresh copy, set up, holding what an AWS run fetches (remote.fetch) from the cluster: the demo's."""
    workdir = copy_workflow(tmp_path_factory.mktemp("fetched") / "workflow")
    for path in ("results/summary", "results/costs", "results/provenance", "results/visits", "logs"):
        shutil.copytree(demo_run / path, workdir / path)
    return set_up(workdir)


def test_every_page_shows_commands():
    """The extraction finds the README's commands (a change of format must not silently test none)."""
    commands = [command for page, command in shown() if page == "README.md"]
    assert "make demo" in commands and "make test" in commands
    assert any(command.startswith(".venv/bin/snakemake --profile aws") for command in commands)


def test_nothing_in_the_workflow_shadows_a_profile():
    """Snakemake resolves ``--profile NAME`` in the current directory first: no file or folder there
    may carry a global profile's name, or ``snakemake --profile NAME`` fails in the repository.
    """
    names = {p.name for p in (REPO_ROOT / "profiles").iterdir() if p.name != "default"}
    assert names == {"aws", "slurm"}
    assert not [name for name in names if (REPO_ROOT / name).exists()]


@pytest.mark.parametrize(
    ("page", "command"),
    [pair for pair in shown() if "--profile aws" in pair[1]],
    ids=lambda value: value if not value.endswith(".md") else None,
)
def test_aws_command_plans_only_the_control_plane(fetched, page, command):
    typed = as_typed(command)
    result = run(fetched, f"{typed} --dry-run", env=NO_AWS, timeout=300)
    assert result.returncode == 0, f"{page}: {typed}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    plan = planned_jobs(result)
    assert plan and set(plan) <= CONTROL_PLANE, f"{page}: {typed} plans {plan}"
    if typed.endswith("/bill.csv"):
        assert plan == {"actual_bill": 1}  # the fetched run is not planned again
    elif "results/" not in typed:
        # the drive of a cluster, whatever --config or --configfile the user adds (the estimate
        # is there already: the fetched run's)
        assert set(DRIVE) - {"estimate_cost"} <= set(plan) <= set(DRIVE), plan
        assert set(plan.values()) == {1}, plan


@pytest.mark.parametrize(
    ("page", "command"),
    [pair for pair in shown() if "snakemake" in pair[1].split()[0] and "--profile aws" not in pair[1]],
    ids=lambda value: value if not value.endswith(".md") else None,
)
def test_snakemake_command(demo_run, fresh, page, command):
    typed = as_typed(command)
    if any(option in typed.split() for option in REAL):
        result = run(demo_run, typed)
        assert result.returncode == 0, f"{page}: {typed}\n{result.stderr[-3000:]}"
        if "--report" in typed:
            report = demo_run / typed.split("--report", 1)[1].split()[0]
            assert "visits.csv" in report.read_text(errors="replace")
        return
    result = run(fresh, f"{typed} --dry-run", timeout=300)
    assert result.returncode == 0, f"{page}: {typed}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    plan = planned_jobs(result)
    assert "process_batch" in plan and not set(plan) & (CONTROL_PLANE - {"estimate_cost", "all"}), plan
    if "--profile slurm" in typed:
        assert "Using profiles slurm" in result.stderr or "Using profile slurm" in result.stderr


def make_commands() -> list[tuple[str, str]]:
    return [pair for pair in shown() if pair[1].split()[0] == "make"]


def test_make_commands_are_known():
    """Every make target a page shows is run by a test here; a new one must get its own."""
    tested = {"make", "make demo", "make test", "make env", "make lint", "make format", "make clean"}
    tested |= {"make services"}
    assert {command for _, command in make_commands()} <= tested


def test_make_demo(demo_run):
    """``make demo`` is the session's demo run: what it prints exists."""
    printed = (demo_run.parent / "make-demo.out").read_text()
    paths = re.findall(r"^[A-Z][\w ]+:\s+(/\S+)", printed, flags=re.M)
    assert len(paths) == 6
    for path in paths:
        assert Path(path).exists(), path
        assert Path(path).is_relative_to(demo_run)


def test_make_test_is_what_ci_runs():
    """``make test`` is this suite: .ci/run calls exactly it, and it runs pytest after its set-up."""
    ci = (REPO_ROOT / ".ci/run").read_text().splitlines()
    assert [line for line in ci if line and not line.startswith(("#", "set ", "cd "))] == ["make test"]
    # --no-print-directory: under `make test` this is a sub-make, which would say where it is
    dry = ["make", "--no-print-directory", "-n", "test"]
    plan = subprocess.run(dry, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert plan.stdout.strip().splitlines()[-1].endswith("bin/pytest")


def test_make_env_links_the_profiles(demo_run):
    """``make env`` (which ``make demo`` ran) made the venv and linked the profiles where Snakemake looks."""
    result = run(demo_run, "make env")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (demo_run / ".venv/bin/snakemake").exists()
    home = Path(snakemake_env()["HOME"])
    for name in ("aws", "slurm"):
        assert (home / ".config/snakemake" / name).resolve() == (demo_run / "profiles" / name).resolve()


def test_make_lint():
    result = run(REPO_ROOT, "make lint")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "snakemake --lint --snakefile control-plane.smk" in result.stdout


def tree_digest(root: Path) -> dict[str, str]:
    skip = {".venv", "results", "resources", "logs", ".snakemake", "__pycache__", ".ruff_cache"}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(root).parts)
    }


def test_make_format_changes_nothing_in_formatted_code(demo_run):
    before = tree_digest(demo_run)
    result = run(demo_run, "make format")
    assert result.returncode == 0, result.stderr[-2000:]
    assert tree_digest(demo_run) == before


def test_make_clean(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    for folder in ("results/summary", "resources/stack", "logs/costs", ".snakemake/log"):
        (workdir / folder).mkdir(parents=True)
        (workdir / folder / "file").write_text("x")
    result = run(workdir, "make clean")
    assert result.returncode == 0, result.stderr
    assert not any((workdir / name).exists() for name in ("results", "resources", "logs", ".snakemake"))
    assert (workdir / "Snakefile").exists()


def test_make_services():
    """The tests' services are running (make test started them); starting them again is harmless."""
    result = run(REPO_ROOT, "make services", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_bare_make_says_what_there_is():
    result = run(REPO_ROOT, "make")
    assert result.returncode == 0 and "make demo" in result.stdout and "make test" in result.stdout
