"""One way to write a file so that a reader never sees half of it.

Every file the project writes for later (checkpoints and their sidecars, training state,
logs, cached features, reports) goes through :func:`atomic_write`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text"]

_DEFAULT_MODE = 0o666  # what open() asks for; the umask takes away from it


def _umask() -> int:
    """The process umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(stream)`` on a temporary file beside ``path``, fsync, then rename.

    After a crash at any point, ``path`` holds either its previous complete content or the
    new one; the temporary file is removed when ``write`` raises. Creates missing parent
    folders. The file gets the permissions a plain ``open(path, "w")`` would give it (the
    process umask), not the private mode of a temporary file. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _DEFAULT_MODE & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, data: Any, *, indent: int = 2) -> Path:
    """Write ``data`` as sorted, indented JSON with a trailing newline, atomically."""
    text = json.dumps(data, indent=indent, sort_keys=True, allow_nan=True) + "\n"
    return atomic_write_text(path, text)
