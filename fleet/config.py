"""Read the platform's settings from the environment (prefix BESSFLEET_), once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("var")


class Settings(BaseSettings):
    """Platform settings; every field may be set as ``BESSFLEET_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="BESSFLEET_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR}/bessfleet.sqlite",
        description="SQLAlchemy URL of the store (SQLite file by default).",
    )
    mqtt_url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="URL of the MQTT broker (mqtt:// or mqtts://).",
    )
    dask_address: str | None = Field(
        default=None, description="Address of a Dask scheduler for parallel solves."
    )
    shared_data_dir: Path = Field(
        default=Path("../shared/data"),
        description="Folder of the real public price and load data sets.",
    )


@lru_cache
def get_settings() -> Settings:
    """Return the settings read from the environment (cached; tests override)."""
    return Settings()
