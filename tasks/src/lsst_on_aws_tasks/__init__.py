"""Pipeline side of LSST-on-AWS.

This package runs inside the LSST stack's environment: PipelineTasks for
single-visit processing, the SimCam instrument definition and the Butler
setup commands (instrument registration, raw and calibration ingest).
It imports only the LSST middleware and the field's science libraries,
never the orchestration package.
"""
