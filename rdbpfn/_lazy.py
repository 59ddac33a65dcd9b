"""Lazy package exports: ``import pkg`` stays cheap, names load on first use.

Shared by ``rdbpfn``, ``priors`` and ``eval``, whose ``__init__`` modules each map public
names to the submodules that define them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package``.

    ``exports`` maps each public name to the module that defines it; usage inside a package's
    ``__init__``: ``__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)``.
    """
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
