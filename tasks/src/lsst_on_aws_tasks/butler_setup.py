"""The Butler set-up commands of the workflow's rules, for SimCam and DECam: the command line only.

The work is done by ``repo`` (the repository, dataset types, RUNs and the
output chain), ``simcam_ingest`` and ``decam_ingest`` (instrument records,
raws, calibrations, the reference catalogue), on the Butler's public API.

Run it inside the stack environment::

    python -m lsst_on_aws_tasks.butler_setup create-repo REPO --seed-config YAML \\
        [--registry sqlite|postgresql://...] [--namespace SCHEMA] --output JSON
    python -m lsst_on_aws_tasks.butler_setup register-instrument REPO --output JSON
    python -m lsst_on_aws_tasks.butler_setup ingest-calibs REPO FILE... --output JSON
    python -m lsst_on_aws_tasks.butler_setup ingest-refcat REPO GAIA_FITS... --output JSON
    python -m lsst_on_aws_tasks.butler_setup register-dataset-types REPO PIPELINE --output JSON
    python -m lsst_on_aws_tasks.butler_setup remove-run REPO RUN
    python -m lsst_on_aws_tasks.butler_setup set-chain REPO CHAIN --visits-table PARQUET --output JSON

A visit's raws are ingested by its processing job (``process_visit``). Each
command here fails with exit status 2 and one line naming what is wrong (a
file, the registry).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import decam_ingest, simcam, simcam_ingest
from .ingest import IngestError
from .repo import RepositoryError, chain_visits, create_repo, register_dataset_types, remove_run


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsst_on_aws_tasks.butler_setup", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create-repo")
    p.add_argument("repo")
    p.add_argument("--seed-config", required=True)
    p.add_argument("--registry", default="sqlite", help='"sqlite" or a postgresql:// URL')
    p.add_argument("--namespace", default="", help="PostgreSQL schema of the registry's tables")
    p.add_argument("--output", type=Path, required=True)
    p = sub.add_parser("register-dataset-types")
    p.add_argument("repo")
    p.add_argument("pipeline")
    p.add_argument("--output", type=Path, required=True)
    p = sub.add_parser("register-instrument")
    p.add_argument("repo")
    p.add_argument("--instrument", default=simcam.NAME, choices=[simcam.NAME, "DECam"])
    p.add_argument("--detectors", type=int, default=simcam.DETECTORS, help="SimCam's count of detectors")
    p.add_argument("--output", type=Path, required=True)
    p = sub.add_parser("ingest-calibs")
    p.add_argument("repo")
    p.add_argument("files", nargs="*", type=Path)
    p.add_argument("--transfer", default="copy")
    p.add_argument("--output", type=Path, required=True)
    p = sub.add_parser("ingest-refcat")
    p.add_argument("repo")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--output", type=Path, required=True)
    p = sub.add_parser("remove-run")
    p.add_argument("repo")
    p.add_argument("run")
    p = sub.add_parser("set-chain")
    p.add_argument("repo")
    p.add_argument("chain")
    p.add_argument("--visits-table", type=Path, required=True, help="the summary table (parquet)")
    chained_last = "the instrument's input collection, chained last"
    p.add_argument("--inputs", default=simcam_ingest.DEFAULTS, help=chained_last)
    p.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "create-repo":
            result = create_repo(args.repo, args.seed_config, args.registry, args.namespace)
        elif args.command == "register-dataset-types":
            result = register_dataset_types(args.repo, args.pipeline)
        elif args.command == "register-instrument":
            if args.instrument == "DECam":
                result = decam_ingest.register_decam(args.repo)
            else:
                result = simcam_ingest.register_instrument(args.repo, args.detectors)
        elif args.command == "ingest-refcat":
            result = decam_ingest.ingest_refcat(args.repo, args.files)
        elif args.command == "ingest-calibs":
            result = simcam_ingest.ingest_calibs(args.repo, args.files, args.transfer)
        elif args.command == "remove-run":
            removed = remove_run(args.repo, args.run)
            print(f"{'removed' if removed else 'no'} run {args.run}")
            return 0
        else:
            result = chain_visits(args.repo, args.chain, args.visits_table, args.inputs)
    except (IngestError, RepositoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
