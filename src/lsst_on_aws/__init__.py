"""Orchestration side of LSST-on-AWS.

Configuration checks, the raw-data simulator, the stack installer, the
summary tables and the report figures. Runs in the workflow's environment;
no module imports Snakemake.
"""
