"""The cloud control plane: what `snakemake --profile aws` does from the user's own machine.

- ``cluster``: the ParallelCluster v3 configuration, rendered from the workflow's;
- ``checks``: its checks, the credentials and the buckets, before anything is created;
- ``pcluster``: ParallelCluster's own command line, and its dry run;
- ``providers``: where a cluster comes from (pcluster, or an existing head node);
- ``lifecycle``: create, reach and tear down the cluster, one function a step;
- ``remote``: ssh and rsync to the head node: sync, detached run, follow, fetch;
- ``budgets``: the AWS Budgets alarm over the cluster's tag;
- ``storage``: shared storage that outlives a cluster, checked and deleted on request;
- ``bootstrap``: the head node's set-up script;
- ``s3data``: data and results in S3;
- ``iam``: the user's IAM policy against the calls the workflow makes.
"""
