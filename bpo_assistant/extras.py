"""Optional dependencies (pyproject's extras), imported lazily with a one-line install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """An optional package is not installed; the message says which extra brings it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """import_module(module), or MissingExtra("… pip install 'bpo-assistant[extra]'")."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but one of its own imports failed: keep the real error
        raise MissingExtra(f"{feature} needs {module.split('.')[0]}, which is not installed: "
                           f"pip install 'bpo-assistant[{extra}]'", name=module) from None
