"""The price and load sample shipped with the package (see README.md)."""
