"""The provenance bundle: everything needed to publish a run and say exactly how it was made.

One ``.tar.gz`` holds the resolved configuration, the visit table, the LSST
stack manifest, the package versions of the workflow environment, the git
commit of the workflow (and whether its tree had uncommitted changes), the
timing and cost tables, the Snakemake report, and the SHA-256 of every input
(``inputs.sha256``) and output (``outputs.sha256``) file, with ``MANIFEST.json`` listing each member and
what it is.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import platform
import subprocess
import tarfile
from collections.abc import Iterable
from datetime import UTC, datetime
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
    """The workflow's git commit and whether its tree has uncommitted changes ("unknown" outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def workflow_source(directory: Path | str, synced_record: Path | str) -> dict:
    """The commit of the workflow that ran, and whether it had uncommitted changes.

    From git in a checkout. A copy the control plane synced to a head node has
    no ``.git``: there, the record the control plane wrote from its own
    checkout as it synced (``synced_record``, :func:`git_state`'s answer) says
    it. Otherwise the commit is "unknown".
    """
    state = git_state(directory)
    if state["commit"] == "unknown" and Path(synced_record).is_file():
        recorded = json.loads(Path(synced_record).read_text())
        state = {key: recorded[key] for key in ("commit", "dirty")}
        state["recorded"] = "at sync, by the control plane"
    return state


def package_versions() -> dict[str, str]:
    """Name -> version of every distribution installed in this Python environment."""
    versions = {dist.metadata["Name"]: dist.version for dist in importlib.metadata.distributions()}
    return dict(sorted(versions.items(), key=lambda item: item[0].lower()))


def write_bundle(
    path: Path | str,
    *,
    config: dict,
    members: dict[str, Path | str],
    inputs: list[Path],
    outputs: list[Path],
    workflow: dict,
) -> dict:
    """Write the bundle to ``path`` and return its manifest.

    ``members`` maps a name inside the bundle to a file to include (tables,
    the visit table, the stack manifest, the report). ``inputs`` and
    ``outputs`` are checksummed, not included. ``workflow`` is the workflow's
    commit and state (:func:`workflow_source`).
    """
    texts = {
        "config.yaml": yaml.safe_dump(config, sort_keys=False),
        "workflow-packages.json": json.dumps(package_versions(), indent=1) + "\n",
        "inputs.sha256": checksum_text(inputs),
        "outputs.sha256": checksum_text(outputs),
    }
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "workflow": workflow,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "members": {
            "config.yaml": "the resolved configuration (every key, defaults filled in)",
            "workflow-packages.json": "package versions of the workflow environment",
            "inputs.sha256": f"SHA-256 of the {len(inputs)} files the run read",
            "outputs.sha256": f"SHA-256 of the {len(outputs)} files the run wrote",
            **{name: f"copy of {Path(src).as_posix()}" for name, src in members.items()},
        },
        "n_inputs": len(inputs),
        "n_outputs": len(outputs),
    }
    texts["MANIFEST.json"] = json.dumps(manifest, indent=1) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        for name, text in texts.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(datetime.now(UTC).timestamp())
            tar.addfile(info, io.BytesIO(data))
        for name, src in members.items():
            tar.add(src, arcname=name)
    partial.replace(path)
    return manifest
