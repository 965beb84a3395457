"""The provenance bundle: everything needed to publish a run, say exactly how it was made, and rerun it.

One ``.tar.gz`` holds the workflow's source as it ran (``source/``), the
resolved configuration, the visit table, the LSST stack manifest, the package
versions of the workflow environment, the git commit of the workflow (and
whether its tree had uncommitted changes), the timing and cost tables, the
Snakemake report, ``REPRODUCE.md`` (the command that reruns it), and the
SHA-256 of every input (``inputs.sha256``) and output (``outputs.sha256``)
file. The outputs a rerun must reproduce byte for byte are checksummed again
apart (``science.sha256``); every other output is listed in ``records.tsv``
with why it changes from run to run. ``MANIFEST.json`` lists each member and
what it is.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import platform
import re
import subprocess
import tarfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

# database files change under a live repository; their content is the datasets
UNSTABLE_SUFFIXES = (".sqlite3", ".sqlite3-journal", ".sqlite3-wal", ".sqlite3-shm")


def sha256(path: Path | str, block: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def files_under(paths: Iterable[Path | str], exclude: Iterable[Path | str] = ()) -> list[Path]:
    """Every regular file of ``paths`` (files or folders), sorted, leaving out ``exclude`` and databases."""
    excluded = [Path(p).resolve() for p in exclude]
    found = set()
    for path in map(Path, paths):
        candidates = path.rglob("*") if path.is_dir() else [path]
        for candidate in candidates:
            resolved = candidate.resolve()
            if not candidate.is_file() or candidate.name.endswith(UNSTABLE_SUFFIXES):
                continue
            if any(resolved == e or e in resolved.parents for e in excluded):
                continue
            found.add(candidate)
    return sorted(found)


def checksum_text(files: Iterable[Path]) -> str:
    """``sha256sum`` lines (digest, two spaces, path): ``sha256sum -c`` checks them."""
    return "".join(f"{sha256(f)}  {f.as_posix()}\n" for f in files)


def git_state(directory: Path | str) -> dict:
    """The workflow's git commit and whether its tree has uncommitted changes ("unknown" outside git).

    Only a repository whose top is ``directory`` itself counts: a copy unpacked
    inside someone else's checkout is not that checkout's commit.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != Path(directory).resolve():
            return {"commit": "unknown", "dirty": None}
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def workflow_source(directory: Path | str, source_record: Path | str) -> dict:
    """The commit of the workflow that ran, and whether it had uncommitted changes.

    From git in a checkout. A copy without ``.git`` (the one the control plane
    synced to a head node, or the source unpacked from a bundle) carries a
    record of it (``source_record``: :func:`git_state`'s answer, and who
    recorded it). Otherwise the commit is "unknown".
    """
    state = git_state(directory)
    if state["commit"] == "unknown" and Path(source_record).is_file():
        recorded = json.loads(Path(source_record).read_text())
        state = {key: recorded[key] for key in ("commit", "dirty")}
        state["recorded"] = recorded.get("recorded", "at sync, by the control plane")
    return state


# Config keys whose value names a credential of the machine that ran the workflow (the path of
# the SSH private key that reaches a head node): published as REDACTED, never as given.
SECRET_KEYS = frozenset({"ssh_key_file"})
REDACTED = "<redacted>"


def redact(config: Mapping) -> dict:
    """A copy of ``config`` with the value of every :data:`SECRET_KEYS` key, at any depth, redacted.

    An empty value stays empty: it says that none was given.
    """

    def clean(value: object, key: str | None = None) -> object:
        if isinstance(value, Mapping):
            return {k: clean(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return REDACTED if key in SECRET_KEYS and value else value

    return clean(config)


# a YAML line that sets a SECRET_KEYS key to a value (quoted or plain), and any comment after it
_SECRET_LINE = re.compile(
    rf"^([ \t]*(?:{'|'.join(sorted(SECRET_KEYS))})[ \t]*:[ \t]*)(\"[^\"]*\"|'[^']*'|[^\s#]+)(.*)$",
    re.MULTILINE,
)


def redact_yaml_text(text: str) -> str:
    """``text`` of a YAML file with the value of every :data:`SECRET_KEYS` key redacted, line by line
    (comments and layout kept); empty values stay empty.
    """

    def replace(match: re.Match) -> str:
        if match.group(2) in ('""', "''"):
            return match.group(0)
        return f'{match.group(1)}"{REDACTED}"{match.group(3)}'

    return _SECRET_LINE.sub(replace, text)


UNCLASSIFIED = "unclassified: neither a science output nor a known run record"


def split_outputs(
    outputs: Iterable[Path], science: Iterable[Path | str], records: Mapping[str, str]
) -> tuple[list[Path], dict[Path, str]]:
    """Split ``outputs`` into the science outputs, which a rerun reproduces byte for byte, and run
    records, each with why it changes from run to run.

    ``science`` names the science outputs; ``records`` maps a glob (``fnmatch``,
    ``*`` crossing folders) to the reason for the outputs it matches, the first
    match winning. An output that is neither is :data:`UNCLASSIFIED`.
    """
    wanted = {Path(p).as_posix() for p in science}
    kept, why = [], {}
    for path in outputs:
        name = path.as_posix()
        if name in wanted:
            kept.append(path)
            continue
        matches = (reason for glob, reason in records.items() if fnmatchcase(name, glob))
        why[path] = next(matches, UNCLASSIFIED)
    return kept, why


def records_text(records: Mapping[Path, str]) -> str:
    """``records.tsv``: each run record's path and why it changes from run to run."""
    lines = ["path\twhy it changes from run to run\n"]
    lines += [f"{path.as_posix()}\t{reason}\n" for path, reason in sorted(records.items())]
    return "".join(lines)


def reproduce_text(*, workflow: Mapping, data: Mapping, n_science: int, redacted: list[str]) -> str:
    """``REPRODUCE.md``: the command that reruns the bundle's run from an unpacked copy, and checks it.

    ``workflow`` is :func:`workflow_source`'s answer; ``data`` the config's
    ``data`` section (where the raws come from decides what the reader needs);
    ``redacted`` the source files whose secrets the bundle leaves out.
    """
    commit = workflow["commit"]
    state = ", with uncommitted changes: the source here is the tree as it ran" if workflow["dirty"] else ""
    needs = {
        "simulated": "Nothing else: the run simulates its data again, from the seeds in `config.yaml`.",
        "directory": f"The raws and calibrations at `{data.get('path', '')}`, as the run read them\n"
        "(`inputs.sha256` lists each file and its checksum).",
        "s3": f"Read access to `{data.get('path', '')}`, from which the run stages its data again.",
    }[data["source"]]
    command = "cd source && make env && .venv/bin/snakemake --configfile ../config.yaml"
    command += " && sha256sum -c ../science.sha256"
    if redacted:
        names = ", ".join(f"`{name}`" for name in redacted)
        changed = f" Secrets were redacted from {names}, so {'its' if len(redacted) == 1 else 'their'}"
        changed += " checksums there differ; no secret is an input of the science."
    else:
        changed = ""
    return f"""# Rerunning this run

This bundle holds the workflow's source as it ran (`source/`: commit
`{commit}`{state}), its resolved configuration (`config.yaml`) and the checksums of what it
read and wrote.

You need Debian or Ubuntu with `make` and Python 3.12 (pyenv's, or `python3.12` on `PATH`),
and the package registry (PyPI), from which `make env` installs the workflow's locked
environment and the run installs the LSST stack locked in `source/envs/stack-pip/`.
{needs}

In the folder where you unpacked the bundle:

```bash
{command}
```

`sha256sum -c ../inputs.sha256` in `source/` checks, after the run, that it read the same
inputs.{changed}

`science.sha256` lists the {n_science} outputs a rerun reproduces byte for byte (each visit's
catalogue, summary and preview, and the tables and figures made from them alone) on the same
stack and the same kind of machine; a different CPU may change the last bits of floating-point
columns. `records.tsv` lists every other output and why it differs from run to run (times, costs,
dataset ids, logs). To rerun on a Slurm login node instead, add `--profile slurm` after
`snakemake`: where it runs does not change the science.
"""


def package_versions() -> dict[str, str]:
    """Name -> version of every distribution installed in this Python environment."""
    versions = {dist.metadata["Name"]: dist.version for dist in importlib.metadata.distributions()}
    return dict(sorted(versions.items(), key=lambda item: item[0].lower()))


def write_bundle(
    path: Path | str,
    *,
    config: dict,
    members: Mapping[str, Path | str],
    source: Mapping[str, Path | str],
    inputs: list[Path],
    outputs: list[Path],
    science: list[Path],
    records: Mapping[Path, str],
    workflow: dict,
    source_record: str,
) -> dict:
    """Write the bundle to ``path`` and return its manifest.

    ``members`` maps a name inside the bundle to a file to include (tables,
    the visit table, the stack manifest, the report); ``source`` maps each of
    the workflow's own files, by its path in the workflow, to the file, put
    under ``source/``. ``inputs`` and ``outputs`` are checksummed, not
    included; ``science`` (a part of ``outputs``) again on its own, and
    ``records`` (the rest, :func:`split_outputs`) listed with why each changes.
    ``config`` goes in with its secrets redacted (:func:`redact`); ``workflow``
    is the workflow's commit and state (:func:`workflow_source`), also written
    into the source as ``source_record``, since the unpacked source has no ``.git``.
    """
    published = redact(config)
    # the source's YAML files with their secrets redacted, where they had any
    redacted = {}
    for name, src in source.items():
        if Path(name).suffix in (".yaml", ".yml"):
            text = Path(src).read_text()
            if (clean := redact_yaml_text(text)) != text:
                redacted[Path(name).as_posix()] = clean
    source_state = {key: workflow[key] for key in ("commit", "dirty")} | {
        "recorded": f"in the bundle of a run of {workflow['commit']}"
    }
    texts = {
        "REPRODUCE.md": reproduce_text(
            workflow=workflow, data=config["data"], n_science=len(science), redacted=sorted(redacted)
        ),
        "config.yaml": yaml.safe_dump(published, sort_keys=False),
        "workflow-packages.json": json.dumps(package_versions(), indent=1) + "\n",
        "inputs.sha256": checksum_text(inputs),
        "outputs.sha256": checksum_text(outputs),
        "science.sha256": checksum_text(science),
        "records.tsv": records_text(records),
        f"source/{source_record}": json.dumps(source_state, indent=2) + "\n",
    }
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "workflow": workflow,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "members": {
            "REPRODUCE.md": "how to rerun this run from this bundle, and check it",
            "source/": f"the workflow's {len(source)} files as they ran",
            "config.yaml": "the resolved configuration (every key, defaults filled in, secrets redacted)",
            "workflow-packages.json": "package versions of the workflow environment",
            "inputs.sha256": f"SHA-256 of the {len(inputs)} files the run read",
            "outputs.sha256": f"SHA-256 of the {len(outputs)} files the run wrote",
            "science.sha256": f"SHA-256 of the {len(science)} outputs a rerun reproduces byte for byte",
            "records.tsv": f"the {len(records)} other outputs, and why each changes from run to run",
            **{name: f"copy of {Path(src).as_posix()}" for name, src in members.items()},
        },
        "n_inputs": len(inputs),
        "n_outputs": len(outputs),
        "n_science": len(science),
        "redacted": sorted(f"source/{name}" for name in redacted),
    }
    texts["MANIFEST.json"] = json.dumps(manifest, indent=1) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    now = int(datetime.now(UTC).timestamp())
    with tarfile.open(partial, "w:gz") as tar:
        for name, text in texts.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), now, 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, src in members.items():
            tar.add(src, arcname=name)
        for name, src in sorted(source.items()):
            arcname = f"source/{Path(name).as_posix()}"
            if Path(name).as_posix() in redacted:
                data = redacted[Path(name).as_posix()].encode()
                info = tar.gettarinfo(src, arcname=arcname)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.add(src, arcname=arcname, recursive=False)
    partial.replace(path)
    return manifest
