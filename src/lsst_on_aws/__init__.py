"""Orchestration side of LSST-on-AWS. Runs in the workflow's environment; no module imports Snakemake.

- ``config``: the configuration's checks beyond the schema;
- ``simulate``: SimCam's simulated raws, calibrations and truth;
- ``stack``: installing the LSST stack (pip, an existing install, lsstinstall);
- ``summary``, ``plots``: the visit table, the truth check and the report's figures;
- ``provenance``: the publishing bundle;
- ``accounting``: timings, prices, costs, the budget and the bill;
- ``cloud``: the control plane that drives a cluster;
- ``logs``: a script's log, terminal and known errors.

The workflow's paths and rule names reach these functions as arguments, from the rules.
"""
