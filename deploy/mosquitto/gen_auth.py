"""Write Mosquitto password and ACL files for a fleet file.

Usage::

    python deploy/mosquitto/gen_auth.py deploy/examples/fleet.toml --out /etc/mosquitto/bessfleet

writes ``passwd`` (hashed, for ``password_file``), ``acl`` (for ``acl_file``) and
``credentials.txt`` (``user password`` lines, mode 0600: hand each gateway its own line,
then delete the file). Existing passwords in ``credentials.txt`` are kept, so re-running
after a fleet change only adds the new sites.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from fleet.fleetfile import load_fleet
from telemetry.broker_config import (
    DISPATCH_USER,
    INGEST_USER,
    acl_file,
    new_passwords,
    password_file,
)
from telemetry.registry import site_spec_from

logger = logging.getLogger(__name__)


def _read_credentials(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            user, password = line.split(maxsplit=1)
            out[user] = password.strip()
    return out


def generate(fleet_path: Path, out_dir: Path) -> dict[str, str]:
    """Write ``passwd``, ``acl`` and ``credentials.txt`` into ``out_dir``."""
    fleet = load_fleet(fleet_path)
    specs = [site_spec_from(site) for site in fleet.sites]
    out_dir.mkdir(parents=True, exist_ok=True)
    creds_path = out_dir / "credentials.txt"
    creds = _read_credentials(creds_path)
    users = [INGEST_USER, DISPATCH_USER, *(s.site_id for s in specs)]
    creds |= new_passwords(u for u in users if u not in creds)
    creds = {u: creds[u] for u in users}
    (out_dir / "acl").write_text(acl_file(specs))
    (out_dir / "passwd").write_text(password_file(creds))
    creds_path.write_text("".join(f"{u} {p}\n" for u, p in creds.items()))
    os.chmod(creds_path, 0o600)
    os.chmod(out_dir / "passwd", 0o600)
    return creds


def main() -> None:
    """Parse the command line and write the files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fleet", type=Path, help="fleet file (TOML or YAML)")
    parser.add_argument("--out", type=Path, default=Path("deploy/mosquitto/generated"))
    args = parser.parse_args()
    creds = generate(args.fleet, args.out)
    logging.basicConfig(level=logging.INFO)
    logger.info(
        "wrote %s/{passwd,acl,credentials.txt} for %d users", args.out, len(creds)
    )


if __name__ == "__main__":
    main()
