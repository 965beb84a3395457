"""Butler formatter for astropy ``CCDData`` images stored as FITS.

Raw frames, master calibrations and processed images are all ``CCDData``
(astropy's CCD image type, the one ccdproc works on): pixels, header,
uncertainty and mask in one multi-extension FITS file. The repository's
seed config (``config/butler-seed.yaml``) declares the ``CCDData`` storage
class and maps it to this formatter.
"""

from __future__ import annotations

from typing import Any

from astropy.nddata import CCDData
from lsst.daf.butler import FormatterV2
from lsst.resources import ResourcePath

__all__ = ["CCDDataFitsFormatter"]


class CCDDataFitsFormatter(FormatterV2):
    """Read and write `astropy.nddata.CCDData` as FITS."""

    default_extension = ".fits"
    supported_extensions = frozenset({".fits", ".fz", ".fits.gz"})
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        # Raw frames carry BUNIT; processed images are written with their unit.
        return CCDData.read(path, unit=None if _has_unit(path) else "adu")

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        in_memory_dataset.write(uri.ospath, overwrite=True)


def _has_unit(path: str) -> bool:
    from astropy.io import fits

    return "BUNIT" in fits.getheader(path)
