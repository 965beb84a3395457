"""The errors of the Butler set-up commands, in a module of their own.

``butler_setup`` runs as ``python -m lsst_on_aws_tasks.butler_setup``, so it
is ``__main__`` there, and a module it imports (``decam_ingest``) that
imported its classes from ``butler_setup`` would get a second copy of them,
which its ``except`` clauses would not catch. Both import these instead.
"""


class IngestError(RuntimeError):
    """A file cannot be ingested; the message names the file and the reason."""


class RepositoryError(RuntimeError):
    """The repository cannot be used as asked; the message says why."""
