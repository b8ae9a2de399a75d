"""Exceptions of the fleet package."""

from __future__ import annotations


class FleetInputError(ValueError):
    """Bad input at a fleet boundary (fleet file, CSV, CLI argument)."""


class FleetFileError(FleetInputError):
    """A fleet file that cannot be loaded; the message names file, site and field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class StoreError(RuntimeError):
    """The store cannot do what was asked (unreachable, not migrated, …)."""
