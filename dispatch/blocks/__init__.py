"""Constraint blocks of the dispatch model, one function per constraint group."""
