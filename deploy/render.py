"""Render deploy/generated/ (broker config, per-site ACL, passwords, env files) from a fleet file.

Usage (from the repository root, with the project's virtualenv)::

    .venv/bin/python deploy/render.py deploy/examples/fleet.toml --out deploy/generated \
        [--dev-certs] [--ingest-workers 2]

``--dev-certs`` also creates a private CA, the broker certificate and one client
certificate per site and service (development and first installs only; see README).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fleet.deploy import SERVICE_USERS, DeployOptions, make_dev_certificates, render
from fleet.errors import FleetInputError
from fleet.fleetfile import load_fleet


def main(argv: list[str] | None = None) -> int:
    """Render the files; return the exit code (2 for a bad fleet file or option)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fleet_file", type=Path, help="fleet file (TOML or YAML)")
    parser.add_argument("--out", type=Path, default=Path("deploy/generated"))
    parser.add_argument("--ingest-workers", type=int, default=2)
    parser.add_argument("--dask-address", default="tcp://dask-scheduler:8786")
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://bessfleet@postgres:5432/bessfleet",
        help="store URL without the password (the password comes from a secret)",
    )
    parser.add_argument(
        "--dev-certs", action="store_true", help="create a dev CA and certs"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        fleet = load_fleet(args.fleet_file)
        options = DeployOptions(
            database_url=args.database_url,
            dask_address=args.dask_address,
            ingest_workers=args.ingest_workers,
        )
        done = render(fleet, args.out, options)
        if args.dev_certs:
            clients = [s.id for s in fleet.sites] + [u.name for u in SERVICE_USERS]
            make_dev_certificates(args.out / "certs", clients)
    except FleetInputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    for path in done.files:
        sys.stdout.write(f"{path}\n")
    sys.stdout.write(f"{len(done.site_ids)} sites in the ACL\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
