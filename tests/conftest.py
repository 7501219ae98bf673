"""Shared fixtures."""

from __future__ import annotations

import shutil

import pytest


def require(tool: str) -> str:
    """Path of a program the test needs; the suite's set-up installs it, so absence fails."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed (make setup installs it)")
    return path
