"""Accounting: what a run took and what it cost.

- ``timing``: one tidy table of every job and pipeline quantum;
- ``slurm``: Slurm's accounting of the jobs (and cancelling an interrupted run's jobs);
- ``prices``: EC2 prices, from the dated table or from AWS, cached;
- ``model``: each job's cost and the cluster's fixed costs;
- ``budget``: the pre-flight estimate and the budget check;
- ``bill``: what AWS charged, from Cost Explorer.
"""
