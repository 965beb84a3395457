"""Checks of the workflow's configuration and visit table, with one-sentence errors.

Snakemake's own schema validation reports a failing key inside a long
jsonschema dump; users need the key and the reason. These checks run first
(from ``rules/common.smk``) and raise :class:`ConfigError` with exactly
that, before any job runs.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

VISIT_COLUMNS = {
    "visit": "int64",
    "band": "string",
    "seeing_arcsec": "float64",
    "ra_offset_arcsec": "float64",
    "dec_offset_arcsec": "float64",
}


class ConfigError(ValueError):
    """The configuration or visit table is wrong; the message says where and why."""


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def describe_error(error: jsonschema.ValidationError, source: str) -> str:
    """One sentence naming the offending key of a schema violation."""
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = _key_path(error)
        prefix = "" if where == "(top level)" else f"{where}."
        return (
            f"{source}: unknown key {', '.join(prefix + k for k in extra)}"
            f" (allowed{' under ' + where if prefix else ''}: {', '.join(allowed)})"
        )
    if error.validator == "pattern":
        # the regular expression says little to a user; the key's description says what is wanted
        wanted = " ".join(str(error.schema.get("description", "")).split())
        return f"{source}: key {_key_path(error)}: {_redact(error.instance)!r} is not valid. {wanted}"
    return f"{source}: key {_key_path(error)}: {error.message}"


def _redact(value: object) -> object:
    """A value with any password in a URL (``scheme://user:password@host``) masked."""
    if isinstance(value, str):
        return re.sub(r"(://[^/\s:@]+):[^@/\s]*@", r"\1:***@", value)
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


# How a command-line string becomes each JSON-schema scalar type.
_PARSERS = {
    "integer": int,
    "number": _finite_float,
    "boolean": lambda text: {"true": True, "false": False}[text.lower()],
}


def _alternatives(node: dict) -> list[dict]:
    """The schema node itself, or each branch of its oneOf/anyOf."""
    branches = node.get("oneOf") or node.get("anyOf")
    return [node | b for b in branches] if branches else [node]


def coerce_command_line(instance, node: dict):
    """Values typed on the command line, as the schema means them.

    ``snakemake --config key="{a: 6.0}"`` parses nested values with YAML's
    BaseLoader, which keeps every scalar a string (``'6.0'``, ``['1', '2']``).
    Where the schema asks for a number, integer or boolean and the string
    reads as one, it is replaced by that value; anything else is left for
    the schema check to report.
    """
    if isinstance(instance, dict):
        props = node.get("properties", {})
        return {k: coerce_command_line(v, props.get(k, {})) for k, v in instance.items()}
    branches = _alternatives(node)
    if isinstance(instance, list):
        for branch in branches:
            if branch.get("type") == "array":
                return [coerce_command_line(v, branch.get("items", {})) for v in instance]
        return instance
    if isinstance(instance, str) and not any(b.get("type") == "string" for b in branches):
        for branch in branches:
            parse = _PARSERS.get(branch.get("type"))
            if parse:
                with contextlib.suppress(ValueError, KeyError):
                    return parse(instance.strip())
            elif branch.get("type") == "array":
                with contextlib.suppress(yaml.YAMLError):
                    value = yaml.safe_load(instance)
                    if isinstance(value, list):
                        return coerce_command_line(value, branch)
    return instance


def check_against_schema(instance: dict, schema: dict, source: str) -> None:
    """Raise ConfigError for the first violation of ``schema`` (a loaded JSON schema), naming its key."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), str(e.absolute_path))
    )
    if errors:
        raise ConfigError(describe_error(jsonschema.exceptions.best_match(errors), source))


def load_visits(path: Path | str) -> pd.DataFrame:
    """Read and check the visit table (TSV); one row per visit."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"visit table {path} does not exist")
    try:
        table = pd.read_csv(path, sep="\t", comment="#", dtype=str)
    except Exception as exc:
        raise ConfigError(f"visit table {path} cannot be read as TSV: {exc}") from exc
    missing = [c for c in ("visit", "band") if c not in table.columns]
    if missing:
        raise ConfigError(f"visit table {path} lacks column(s) {', '.join(missing)}")
    unknown = [c for c in table.columns if c not in VISIT_COLUMNS]
    if unknown:
        raise ConfigError(
            f"visit table {path} has unknown column(s) {', '.join(unknown)}"
            f" (known: {', '.join(VISIT_COLUMNS)})"
        )
    defaults = {"seeing_arcsec": "0.8", "ra_offset_arcsec": "0", "dec_offset_arcsec": "0"}
    for column, default in defaults.items():
        if column not in table.columns:
            table[column] = default
        table[column] = table[column].fillna(default)
    for column, dtype in VISIT_COLUMNS.items():
        if dtype == "string":
            continue
        converted = pd.to_numeric(table[column], errors="coerce")
        bad = table.loc[converted.isna(), column]
        if len(bad):
            raise ConfigError(f"visit table {path}: column {column} has non-numeric value {bad.iloc[0]!r}")
        if dtype == "int64" and not (converted == converted.round()).all():
            raise ConfigError(f"visit table {path}: column {column} must hold integers")
        table[column] = converted.astype(dtype)
    dupes = table["visit"][table["visit"].duplicated()]
    if len(dupes):
        raise ConfigError(f"visit table {path}: visit {int(dupes.iloc[0])} appears more than once")
    if (table["visit"] <= 0).any():
        raise ConfigError(f"visit table {path}: visit ids must be positive integers")
    if (table["seeing_arcsec"] <= 0).any():
        raise ConfigError(f"visit table {path}: seeing_arcsec must be positive")
    return table.set_index("visit", drop=False).sort_index()


def check_bands(table: pd.DataFrame, bands: Iterable[str], source: str) -> None:
    """Every visit's band is one the instrument has."""
    bands = list(bands)
    bad = table.loc[~table["band"].isin(bands)]
    if len(bad):
        row = bad.iloc[0]
        raise ConfigError(
            f"{source}: visit {int(row['visit'])} has band {row['band']!r};"
            f" the instrument has {', '.join(bands)}"
        )


def select_visits(table: pd.DataFrame, selection, source: str) -> list[int]:
    """The visit ids to process: ``"all"`` or a list of ids that must be in the table."""
    known = [int(v) for v in table["visit"]]
    if selection == "all":
        chosen = known
    else:
        chosen = [int(v) for v in selection]
        unknown = [v for v in chosen if v not in set(known)]
        if unknown:
            raise ConfigError(
                f"visit {unknown[0]} in process_visits is not in the visit table {source}"
                f" (it has {_ranges(known)})"
            )
    if not chosen:
        raise ConfigError(f"there are no visits to process: the visit list is empty ({source})")
    return sorted(set(chosen))


def batches(table_visits: Iterable[int], chosen: Iterable[int], size: int) -> dict[str, list[int]]:
    """The processing batches: batch name -> the chosen visits it processes, in order.

    The whole visit table, sorted, is cut into runs of ``size`` visits, so a
    visit's batch does not depend on which visits are chosen, and appending
    visits to the table leaves the earlier batches as they were. A batch is
    named after the first and last visit of its run in the table
    (``"1-25"``); runs with no chosen visit are left out.
    """
    ordered = sorted({int(v) for v in table_visits})
    chosen = set(chosen)
    out = {}
    for i in range(0, len(ordered), size):
        run = ordered[i : i + size]
        members = [v for v in run if v in chosen]
        if members:
            out[f"{run[0]}-{run[-1]}"] = members
    return out


def check_data_directory(path: str, visits: Iterable[int]) -> None:
    """A ``directory`` data source holds ``calib/`` and ``raw/<visit>/`` for each visit."""
    root = Path(path)
    if not path:
        raise ConfigError("data.source is 'directory' but data.path is empty")
    if not root.is_dir():
        raise ConfigError(f"data directory {root} does not exist (config key data.path)")
    if not (root / "calib").is_dir():
        raise ConfigError(f"data directory {root} has no calib/ folder of master bias and flat frames")
    missing = [v for v in visits if not (root / "raw" / str(v)).is_dir()]
    if missing:
        raise ConfigError(f"data directory {root} has no raw/{missing[0]}/ folder for visit {missing[0]}")


def check_instcal_source(data: dict) -> None:
    """DECam's data is InstCal files (its visits are found by header) in a directory or under an s3:// URI,
    and a Gaia catalogue to calibrate them against, in a directory or under an s3:// URI.
    """
    if data["source"] not in ("directory", "s3"):
        raise ConfigError(
            "instrument DECam reads InstCal files from a directory (data.source: directory) or from S3"
            f" (data.source: s3), not {data['source']!r}"
        )
    if data["source"] == "directory" and (not data["path"] or not Path(data["path"]).is_dir()):
        raise ConfigError(f"data directory {data['path']!r} does not exist (config key data.path)")
    refcat = data["refcat"]
    if not refcat or (not refcat.startswith("s3://") and not list(Path(refcat).glob("*.fits"))):
        raise ConfigError(
            f"data.refcat {refcat!r} holds no Gaia catalogue files (*.fits): DECam visits are"
            " calibrated against Gaia DR2 (config key data.refcat)"
        )


def check_pipeline(spec: str) -> None:
    """A workflow's pipeline file exists (a stack's, named through a variable, is checked in the stack)."""
    path = spec.split("#")[0]
    if "$" not in path and not Path(path).is_file():
        raise ConfigError(f"pipeline file {path} does not exist (config key pipeline.file)")


def check_stack(stack: dict) -> None:
    """What each stack method needs besides the schema (paths are checked where the stack is installed)."""
    if stack["method"] == "existing" and not stack["load_script"]:
        raise ConfigError(
            "stack.method is 'existing' but stack.load_script is empty: give the installed stack's"
            " loadLSST.bash (e.g. /cvmfs/sw.lsst.eu/linux-x86_64/lsst_distrib/<tag>/loadLSST.bash)"
        )
    if stack["method"] == "lsstinstall" and not stack["products"]:
        raise ConfigError("stack.products is empty: name the EUPS products lsstinstall is to install")


def _ranges(values: list[int]) -> str:
    values = sorted(values)
    if not values:
        return "no visits"
    parts, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return "visits " + ", ".join(parts)


def check_workflow_config(config: dict, schema_path: Path, fill_defaults, bands: Iterable[str]):
    """Check the whole configuration; return the visit table and the visits to process.

    ``fill_defaults(config, schema_path)`` is Snakemake's ``validate``, which
    also fills in the schema's defaults; it runs after the one-sentence check
    so that a user never sees its long report. Raises `ConfigError`.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    config.update(coerce_command_line(config, schema))
    check_against_schema(config, schema, "config")
    fill_defaults(config, str(schema_path))
    visits = load_visits(config["visits"])
    check_bands(visits, bands, config["visits"])
    chosen = select_visits(visits, config["process_visits"], config["visits"])
    if config["instrument"] == "DECam":
        check_instcal_source(config["data"])
    elif config["data"]["source"] == "directory":
        check_data_directory(config["data"]["path"], chosen)
    if config["data"]["source"] == "s3" and not config["data"]["path"].startswith("s3://"):
        raise ConfigError(
            f"data.source is 's3' but data.path {config['data']['path']!r} is not an s3://bucket/prefix URI"
        )
    check_pipeline(config["pipeline"]["file"])
    check_stack(config["stack"])
    return visits, chosen
