"""Placement commands (`zhongdu plan`), registered by `zhongdu.cli`. Imports inside handlers."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this part's commands to the `zhongdu` parser."""
