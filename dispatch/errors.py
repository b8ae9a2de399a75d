"""Exceptions of the dispatch package."""

from __future__ import annotations


class DispatchInputError(ValueError):
    """Bad input to the optimizer (scenario, result, options)."""


class ScenarioError(DispatchInputError):
    """A scenario that breaks the format of spec/dispatch-model.md."""
