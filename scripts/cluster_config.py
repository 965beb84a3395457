"""Snakemake adapter: render the ParallelCluster configuration and check it offline (pcluster's schema)."""

import yaml

from lsst_on_aws.cloud import bootstrap, checks, cluster
from lsst_on_aws.logs import fail, to_log, to_terminal

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
    if config["remote"]["abandon_hours"] and not config["cluster"]["head_node_policy_arn"]:
        to_terminal(
            "warning: cluster.head_node_policy_arn is empty: if this machine never comes back, the"
            " cluster cannot delete itself after remote.abandon_hours (its dead man's switch); create"
            " the policy from config/head-node-iam-policy.json and give its ARN"
        )
    with open(snakemake.output.bootstrap, "w") as out:
        out.write(bootstrap.SCRIPT)
