"""Files in the station's state folder: written whole or not at all, and readable by the owner only, because some
hold secrets (the Basic auth password in the device model, the private keys of the station's certificates)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def private_folder(path: Path) -> Path:
    """Create the folder (and its parents) if needed; one the station creates is owner-only (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically, as a file of mode 0600 from its creation on.

    The bytes go to a new temporary file beside `path` (mkstemp: O_EXCL, mode 0600, so no existing file or symlink is
    reused and nobody else can open it), are flushed to disk, then the file is renamed over `path`: readers see the
    old or the new content, a symlink planted at `path` is replaced rather than followed, and the mode is never wider
    than 0600, not even for a moment."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def is_private(path: Path) -> bool:
    """Whether an existing file is readable by its owner only (no group or other permission bits)."""
    return path.stat().st_mode & 0o077 == 0
