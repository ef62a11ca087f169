"""Fuzz targets (shared by the hypothesis property tests and the atheris harness)."""

from __future__ import annotations
