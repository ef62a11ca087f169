"""The reliability and security harness (issue 8, SPEC §9, docs/reliability.md)."""

from __future__ import annotations
