"""Data files of the fleet package (FEOC threshold table)."""
