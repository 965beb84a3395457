"""Install the LSST stack and describe what was installed.

Every stack method produces, in the stack's folder ``<prefix>/<tag>/``, the
same two files:

- ``activate.sh``, the one activation prefix that every LSST step sources,
  as a real install is activated with ``source loadLSST.bash; setup
  lsst_distrib``;
- ``manifest.json``: method, tag, Python, every installed Python package and
  its version (and the EUPS products set up, where there are any), and when
  it was installed.

The methods:

``pip``
    a virtual environment built with uv from a lock file
    (``envs/stack-pip/<tag>.lock``) plus the project's task package: the LSST
    middleware from PyPI, no ``lsst_distrib``.
``existing``
    a stack installed by someone else (CVMFS, a site install): a
    ``loadLSST.*`` script to source, then ``setup`` of the configured EUPS
    products. The project's task package goes into ``<prefix>/<tag>/tasks``.
``lsstinstall``
    the current Rubin method, onto (shared) storage: ``lsstinstall -T <tag>``
    then ``eups distrib install -t <tag> <products>`` in ``<prefix>/<tag>/``;
    after that, as ``existing`` with that folder's ``loadLSST.bash``. An
    install that completed (``.lsstinstall-complete``, written last) is found
    and reused: a second cluster with the same storage does not pay for it
    again.
"""
