"""Sub-commands of the `coverage` part (registered by `zhongdu.cli`). Keep imports inside handlers."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this part's commands to the `zhongdu` parser."""
