"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None] | str | bytes) -> Path:
    """Write ``path`` through a temporary file in its folder and ``os.replace``.

    ``write`` is the text or bytes to write, or a function that writes a given
    (temporary) path.  On failure the temporary file is removed and ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name opened with "x" (not mkstemp): the file gets the usual umask permissions
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        if callable(write):
            write(tmp)
        else:
            data = write.encode("utf-8") if isinstance(write, str) else write
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
