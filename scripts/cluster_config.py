"""Snakemake adapter: render the ParallelCluster configuration and check it offline (pcluster's schema)."""

import yaml

from lsst_on_aws.cloud import bootstrap, checks, cluster
from lsst_on_aws.logs import fail, to_log

config = snakemake.params.config
with to_log(snakemake.log[0]) as log:
    try:
        allowed = config["cluster"]["allowed_ips"] or checks.own_cidr()
        uri = bootstrap.script_uri(config)
        action = {"Script": uri, "Args": bootstrap.arguments(config)} if uri else None
        doc = cluster.render(config, allowed_ips=allowed, bootstrap=action)
        checks.check(doc, config["cluster"]["name"])
    except cluster.ClusterConfigError as err:
        fail(log, f"Cluster configuration error: {err}")
    with open(snakemake.output.yaml, "w") as out:
        out.write("# ParallelCluster v3 configuration, rendered by the workflow from config/config.yaml\n")
        yaml.safe_dump(doc, out, sort_keys=False)
    log.info("rendered and checked against pcluster's ClusterSchema: %s", snakemake.output.yaml)
    with open(snakemake.output.bootstrap, "w") as out:
        out.write(bootstrap.SCRIPT)
