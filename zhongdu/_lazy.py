"""Lazy re-exports for package `__init__` modules (PEP 562): the project's one mechanism.

Every `zhongdu` command imports each part's `cli` module to build `--help`, and with it the part's
package `__init__`. Eager re-exports there would load FastAPI, psycopg, SciPy… for every command;
with `lazy_exports` a name's module is imported on first use instead (measured in
docs/performance.md, benchmarks/bench_startup.py). A package lists its heavy names in one dict
(`name -> ".module"`) and repeats them under `if TYPE_CHECKING:` for type checkers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], submodules: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`: `exports` maps a name to the module defining it,
    `submodules` a name to a module exported whole (`storage.telemetry`)."""
    namespace = importlib.import_module(package).__dict__
    whole = dict(submodules or {})

    def __getattr__(name: str) -> Any:
        if name in whole:
            value = importlib.import_module(whole[name], package)
        elif name in exports:
            value = getattr(importlib.import_module(exports[name], package), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports) | set(whole))

    return __getattr__, __dir__
