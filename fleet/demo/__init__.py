"""Run the whole fleet loop on one machine: the ``bessfleet demo`` orchestration."""
