"""The peer leg's workaround for CPython's zipfile seek bugs (benchmark only, never the workflow).

Python 3.12.1 and 3.13.0, the interpreters on these machines, read a forward seek inside a stored
zip member wrongly (DESIGN.md, "Python bug"):

- gh-127847: ``_SharedFile.seek(offset, SEEK_CUR)`` moves from the shared file's position, which
  another open member may have moved, instead of this handle's own;
- gh-128131: ``ZipExtFile.seek``'s fast path for stored members moves ``_left`` but not
  ``_compress_left``, so a later read runs past the member (``EOFError``).

A saved quantum graph is a zip that ``lsst.pipe.base`` reads with two members open and forward
seeks: every BPS job (``pipetask run-qbb``) and its final ``butler aggregate-graph`` read one.
Both bugs are fixed upstream in 3.12.9 and 3.13.2; :func:`apply` makes the same two corrections
on the interpreters before those, and does nothing on others. The BPS leg's stack imports this
module at start-up, from a ``.pth`` file in its site-packages.
"""

from __future__ import annotations

import io
import os
import sys
import zipfile


def affected(version: tuple[int, int, int] = sys.version_info[:3]) -> bool:
    """Whether this interpreter has the two seek bugs."""
    return (3, 12) <= version < (3, 12, 9) or (3, 13) <= version < (3, 13, 2)


def apply() -> bool:
    """Correct ``zipfile``'s two seeks if this interpreter needs it; whether it did."""
    if not affected() or getattr(zipfile, "_lsst_on_aws_seek_fix", False):
        return False
    member_seek = zipfile.ZipExtFile.seek

    def seek_member(self, offset, whence=os.SEEK_SET):
        position = member_seek(self, offset, whence)
        if self._compress_type == zipfile.ZIP_STORED and self._decrypter is None:
            # a stored member's bytes in the file are its bytes: as many left to read of each
            self._compress_left = self._left
        return position

    def seek_shared(self, offset, whence=os.SEEK_SET):
        with self._lock:
            if self._writing():
                raise ValueError(
                    "Can't reposition in the ZIP file while there is an open writing handle on it."
                )
            if whence == os.SEEK_CUR:
                self._file.seek(self._pos + offset)  # from this handle's place, not the file's
            else:
                self._file.seek(offset, whence)
            self._pos = self._file.tell()
            return self._pos

    zipfile.ZipExtFile.seek = seek_member
    zipfile._SharedFile.seek = seek_shared
    zipfile._lsst_on_aws_seek_fix = True
    return True


def reads_correctly() -> bool:
    """Two members open at once, a forward seek in one after the other read on: right bytes?"""
    data = bytes(range(256)) * 64
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("head", b"h" * 100)
        archive.writestr("data", data)
        archive.writestr("tail", b"t" * 50_000)
    with zipfile.ZipFile(buffer) as archive, archive.open("data") as one, archive.open("tail") as other:
        one.read(10)
        other.read(40_000)
        one.seek(8_000)
        try:
            return one.read(100) == data[8_000:8_100]
        except EOFError:
            return False
