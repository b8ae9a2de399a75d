"""Price, load and degradation forecasting as pure libraries."""
