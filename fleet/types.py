"""Name the shared type aliases and identifier patterns of the fleet package."""

from __future__ import annotations

from typing import NewType

SiteId = NewType("SiteId", str)
"""A site id; also the ``{site}`` MQTT topic level (see spec/telemetry.md)."""

SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
"""Site ids, POI group names and MQTT groups are MQTT topic levels: this grammar."""

NODE_PATTERN = r"^[A-Z0-9][A-Z0-9_-]{0,63}$"
"""A pricing node as the price data name it (``HB_HOUSTON``, ``TH_SP15_GEN-APND``)."""

RESOURCE_ID_PATTERN = r"^[A-Z0-9][A-Z0-9_]{0,63}$"
"""A market resource id used in bids (``ERCOT_ESR_ODESSA01``)."""

COUNTRY_PATTERN = r"^[A-Z]{2}$"
"""An ISO 3166-1 alpha-2 country code (``US``, ``CN``)."""

US_STATE_PATTERN = r"^[A-Z]{2}$"
"""A two-letter US state code (``TX``, ``CA``)."""
