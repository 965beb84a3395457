"""The cluster's dead man's switch: a cluster whose run ended and that no control plane came back
for tears itself down.

The control plane on the user's machine tears the cluster down once it has fetched the run's
results. If that machine never comes back (lost, out of battery, its user on holiday), nothing
would. So when the run on the head node ends, a watchdog starts there, detached
(:func:`watchdog_script`): it waits ``remote.abandon_hours`` for the control plane to settle the
cluster (fetch, then keep or delete it, which it notes on the head node with
:func:`lsst_on_aws.cloud.remote.mark_settled`), and past that runs this module's :func:`main`:
the teardown of :mod:`lsst_on_aws.cloud.lifecycle`, with the policy and provider of the run's
config, from the head node (for pcluster, ``pcluster delete-cluster`` with the head node's
instance role, which ``cluster.head_node_policy_arn`` must allow). Retained shared storage, with
the results on it, outlives the cluster as always.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import yaml

from lsst_on_aws.cloud import lifecycle


def watchdog_script(directory: str, hours: float, settled: str, teardown: str, poll_s: float = 60) -> str:
    """The watchdog, a bash script run detached in ``directory`` on the head node once the run ended.

    It exits as soon as the file ``settled`` (relative to ``directory``) is newer than the run's
    end; when ``hours`` pass without that, it runs ``teardown`` (a shell command).
    """
    seconds = max(1, round(hours * 3600))
    poll = max(1, min(round(poll_s), seconds))
    within = (
        f"{hours:g} h" if seconds >= 7200 else f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds} s"
    )
    return (
        "#!/usr/bin/env bash\n"
        "# lsst-on-aws dead man's switch (lsst_on_aws.cloud.abandon): tear the cluster down when no\n"
        f"# control plane settles it within {within} of the run's end\n"
        f"cd {shlex.quote(directory)} || exit 1\n"
        f"deadline=$(( $(date +%s) + {seconds} ))\n"
        'while [ "$(date +%s)" -lt "$deadline" ]; do\n'
        f"  if [ {shlex.quote(settled)} -nt .lsst-on-aws/run.rc ]; then\n"
        '    echo "$(date -u +%FT%TZ) the control plane settled the cluster: nothing to do"; exit 0\n'
        "  fi\n"
        f"  sleep {poll}\n"
        "done\n"
        f'echo "$(date -u +%FT%TZ) no control plane settled the cluster within {within}: tearing it down"\n'
        f"{teardown}\n"
    )


def teardown_command(python: str, config: str, record: str, targets: dict[str, str]) -> str:
    """The shell command the watchdog runs: this module with the run's config."""
    args = [python, "-m", "lsst_on_aws.cloud.abandon", "--config", config, "--record", record]
    return shlex.join([*args, "--targets", json.dumps(targets)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the run's resolved config (YAML)")
    parser.add_argument("--record", required=True, help="where the teardown's record goes (JSON)")
    parser.add_argument("--targets", required=True, help="the workflow's delete targets (JSON)")
    args = parser.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    rc = Path(args.config).parent / "run.rc"
    run_ok = rc.exists() and rc.read_text().strip() == "0"
    record = lifecycle.teardown(
        config, run_ok=run_ok, on_progress=print, targets=json.loads(args.targets), abandoned=True
    )
    Path(args.record).write_text(json.dumps(record, indent=2) + "\n")
    print(f"teardown of the abandoned cluster: {record['action']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
