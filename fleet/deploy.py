"""Render the deployment's generated configuration from a fleet file.

What it writes into an output folder (``deploy/generated/`` by convention)::

    mosquitto/mosquitto.conf   two TLS listeners: sites (client certificate, CN = site id)
                               and platform services (username + password)
    mosquitto/acl              per-site ACL from the fleet file + the platform services
    mosquitto/passwd           PBKDF2-SHA512 hashes of the service passwords
    env/bessfleet.env          settings shared by every bessfleet container
    env/<service>.env          per-service settings (ingest client ids, roles)
    secrets/*.password         generated service passwords (kept when already present)

Nothing here talks to a broker or a database; :func:`render` is a pure function of its
inputs (plus the random passwords, which are reused when the files exist) so that the
tests can start the real Mosquitto on the rendered files.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleet.domain import Fleet
from fleet.errors import FleetInputError

logger = logging.getLogger(__name__)

TOPIC_ROOT = "bess/v1"
SITE_LISTENER_PORT = 8883
"""TLS listener for site gateways: client certificate required, CN is the username."""
SERVICE_LISTENER_PORT = 8884
"""TLS listener for platform services: username and password."""
SHARE_GROUP = "bessfleet-ingest"
"""MQTT v5 shared-subscription group of the ingest workers."""
PBKDF2_ITERATIONS = 101
"""Mosquitto's own default for ``$7$`` (PBKDF2-SHA512) password hashes."""


@dataclass(frozen=True, slots=True)
class ServiceUser:
    """A platform service's MQTT identity and what it may publish or read."""

    name: str
    """MQTT username (also the password file entry)."""
    read: tuple[str, ...] = ()
    """Topic filters it may subscribe to."""
    write: tuple[str, ...] = ()
    """Topic filters it may publish to."""


SERVICE_USERS: tuple[ServiceUser, ...] = (
    ServiceUser(
        "bessfleet-ingest",
        read=(
            f"{TOPIC_ROOT}/+/+/up/#",
            f"$share/{SHARE_GROUP}/{TOPIC_ROOT}/+/+/up/#",
            "$SYS/broker/publish/messages/dropped",
        ),
        write=(f"{TOPIC_ROOT}/+/+/down/ctl",),
    ),
    ServiceUser(
        "bessfleet-scheduler",
        read=(
            f"{TOPIC_ROOT}/+/+/up/ack",
            f"{TOPIC_ROOT}/+/+/up/state",
            f"{TOPIC_ROOT}/+/+/up/birth",
        ),
        write=(f"{TOPIC_ROOT}/+/+/down/#", f"{TOPIC_ROOT}/_host/state/#"),
    ),
    ServiceUser(
        "bessfleet-api",
        read=(f"{TOPIC_ROOT}/+/+/up/state", f"{TOPIC_ROOT}/+/+/up/birth"),
    ),
)


@dataclass(frozen=True, slots=True)
class DeployOptions:
    """Choices of a rendered deployment."""

    database_url: str = "postgresql+psycopg://bessfleet@postgres:5432/bessfleet"
    """Store URL without password (libpq reads PGPASSWORD from the secret)."""
    mqtt_host: str = "mosquitto"
    """Broker host name as the platform containers see it."""
    dask_address: str = "tcp://dask-scheduler:8786"
    """Dask scheduler address for the fleet solves and backtests."""
    ingest_workers: int = 2
    """Ingest worker replicas (one persistent MQTT session each)."""
    cert_dir: str = "/mosquitto/certs"
    """Folder of ca.crt, server.crt and server.key inside the broker container."""
    config_dir: str = "/mosquitto/config"
    """Folder of the rendered acl and passwd inside the broker container."""
    data_dir: str = "/mosquitto/data"
    """Persistence folder inside the broker container."""
    ca_file_in_app: str = "/run/secrets/mqtt-ca.crt"
    """CA certificate path inside the bessfleet containers (``SSL_CERT_FILE``)."""
    extra_env: Mapping[str, str] = field(default_factory=dict)
    """More settings for ``bessfleet.env`` (e.g. ``BESSFLEET_FLEET_FILE``)."""


@dataclass(frozen=True, slots=True)
class RenderedDeploy:
    """What :func:`render` wrote."""

    files: tuple[Path, ...]
    """Every file written, in order."""
    site_ids: tuple[str, ...]
    """Sites that got an ACL entry."""


def site_acl_lines(site_id: str, group: str) -> list[str]:
    """Return the ACL block of one site gateway (its own topics only).

    Parameters
    ----------
    site_id
        Site id: the certificate CN and MQTT username.
    group
        Topic group (market partition) of the site.
    """
    base = f"{TOPIC_ROOT}/{group}/{site_id}"
    return [
        f"user {site_id}",
        f"topic write {base}/up/#",
        f"topic read {base}/down/#",
        f"topic read {TOPIC_ROOT}/_host/state/+",
        "",
    ]


def render_acl(fleet: Fleet, services: Sequence[ServiceUser] = SERVICE_USERS) -> str:
    """Return the Mosquitto ACL file: services first, then one block per site.

    A user with no block gets no topic at all (Mosquitto denies by default once an ACL
    file is set), so an unknown certificate CN can connect but neither read nor write.
    """
    lines = [
        "# Generated by fleet.deploy from the fleet file; do not edit by hand.",
        f"# Fleet: {fleet.name} ({len(fleet.sites)} sites)",
        "",
    ]
    for user in services:
        lines.append(f"user {user.name}")
        lines.extend(f"topic read {topic}" for topic in user.read)
        lines.extend(f"topic write {topic}" for topic in user.write)
        lines.append("")
    for site in fleet.sites:
        lines.extend(site_acl_lines(site.id, site.mqtt_group))
    return "\n".join(lines)


def mosquitto_password_hash(password: str, salt: bytes | None = None) -> str:
    """Return a Mosquitto 2 password-file hash (``$7$`` PBKDF2-SHA512) of ``password``.

    Parameters
    ----------
    password
        The clear-text password.
    salt
        12 random bytes (new ones when None).
    """
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    salt_b64 = base64.b64encode(salt).decode()
    digest_b64 = base64.b64encode(digest).decode()
    return f"$7${PBKDF2_ITERATIONS}${salt_b64}${digest_b64}"


def render_passwd(passwords: Mapping[str, str]) -> str:
    """Return a Mosquitto password file for the given ``{username: password}``."""
    return "".join(
        f"{user}:{mosquitto_password_hash(pw)}\n"
        for user, pw in sorted(passwords.items())
    )


def render_mosquitto_conf(
    options: DeployOptions,
    *,
    site_port: int = SITE_LISTENER_PORT,
    service_port: int = SERVICE_LISTENER_PORT,
    bind_address: str = "",
) -> str:
    """Return the production ``mosquitto.conf`` (spec telemetry.md section 8.7).

    Parameters
    ----------
    options
        Paths inside the broker container.
    site_port, service_port
        Ports of the two TLS listeners.
    bind_address
        Address to bind the listeners to (empty: every interface).
    """
    bind = f" {bind_address}" if bind_address else ""
    cert = options.cert_dir
    conf = options.config_dir
    return f"""\
# Generated by fleet.deploy; do not edit by hand (re-render from the fleet file).
# Queue settings follow spec telemetry.md section 8: never drop QoS 1 messages silently.
per_listener_settings true
persistence true
persistence_location {options.data_dir}/
autosave_interval 60
max_queued_messages 0
max_queued_bytes 1073741824
max_inflight_messages 0
persistent_client_expiration 7d
message_size_limit 262144
memory_limit 0
log_dest stdout
log_type error
log_type warning
log_type notice
connection_messages true

# Site gateways: TLS with a client certificate signed by the fleet CA; CN = site id.
listener {site_port}{bind}
protocol mqtt
cafile {cert}/ca.crt
certfile {cert}/server.crt
keyfile {cert}/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
allow_anonymous false
acl_file {conf}/acl

# Platform services (ingest, scheduler, API): TLS, username and password.
listener {service_port}{bind}
protocol mqtt
certfile {cert}/server.crt
keyfile {cert}/server.key
require_certificate false
tls_version tlsv1.2
allow_anonymous false
password_file {conf}/passwd
acl_file {conf}/acl
"""


def _service_password(secret_dir: Path, user: str) -> str:
    path = secret_dir / f"{user}.password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(24)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def _env_text(values: Mapping[str, str]) -> str:
    for key, value in values.items():
        if "\n" in value:
            msg = f"env {key}: value must be one line, got {value!r}"
            raise FleetInputError(msg)
    return "".join(f"{key}={value}\n" for key, value in values.items())


def render_env(
    options: DeployOptions, service_passwords: Mapping[str, str]
) -> dict[str, str]:
    """Return ``{file name: content}`` of the env files of the bessfleet containers.

    The shared file holds the URLs; each service file adds its MQTT credentials and,
    for the ingest workers, a stable client id (the persistent session's key).
    """

    def mqtt_url(user: str) -> str:
        password = service_passwords[user]
        return f"mqtts://{user}:{password}@{options.mqtt_host}:{SERVICE_LISTENER_PORT}"

    common = {
        "BESSFLEET_DATABASE_URL": options.database_url,
        "BESSFLEET_DASK_ADDRESS": options.dask_address,
        "SSL_CERT_FILE": options.ca_file_in_app,
        "BESSFLEET_DB_PASSWORD_FILE": "/run/secrets/db-password",
        **options.extra_env,
    }
    files = {"bessfleet.env": _env_text(common)}
    files["api.env"] = _env_text(
        {"BESSFLEET_ROLE": "api", "BESSFLEET_MQTT_URL": mqtt_url("bessfleet-api")}
    )
    files["scheduler.env"] = _env_text(
        {
            "BESSFLEET_ROLE": "scheduler",
            "BESSFLEET_MQTT_URL": mqtt_url("bessfleet-scheduler"),
        }
    )
    for k in range(1, options.ingest_workers + 1):
        files[f"ingest-{k}.env"] = _env_text(
            {
                "BESSFLEET_ROLE": "ingest",
                "BESSFLEET_MQTT_URL": mqtt_url("bessfleet-ingest"),
                "BESSFLEET_INGEST_CLIENT_ID": f"bessfleet-ingest-{k}",
                "BESSFLEET_INGEST_SHARE_GROUP": SHARE_GROUP,
            }
        )
    return files


def render(
    fleet: Fleet, out_dir: Path, options: DeployOptions | None = None
) -> RenderedDeploy:
    """Write the broker configuration, ACL, password file and env files for ``fleet``.

    Parameters
    ----------
    fleet
        The validated fleet (``fleet.fleetfile.load_fleet``).
    out_dir
        Output folder; created when missing. Existing service passwords in
        ``out_dir/secrets`` are kept, so re-rendering after a fleet change does not
        rotate them.
    options
        Deployment choices (defaults match ``deploy/compose.yaml``).

    Raises
    ------
    FleetInputError
        When ``options.ingest_workers`` < 1 or a setting spans several lines.
    """
    options = options or DeployOptions()
    if options.ingest_workers < 1:
        msg = f"ingest_workers={options.ingest_workers} must be >= 1"
        raise FleetInputError(msg)
    (out_dir / "mosquitto").mkdir(parents=True, exist_ok=True)
    (out_dir / "env").mkdir(exist_ok=True)
    secret_dir = out_dir / "secrets"
    secret_dir.mkdir(exist_ok=True)
    secret_dir.chmod(0o700)
    passwords = {u.name: _service_password(secret_dir, u.name) for u in SERVICE_USERS}
    written: list[Path] = []

    def write(path: Path, text: str, mode: int = 0o644) -> None:
        path.write_text(text)
        path.chmod(mode)
        written.append(path)

    write(out_dir / "mosquitto" / "mosquitto.conf", render_mosquitto_conf(options))
    write(out_dir / "mosquitto" / "acl", render_acl(fleet))
    write(out_dir / "mosquitto" / "passwd", render_passwd(passwords), 0o600)
    for name, text in render_env(options, passwords).items():
        write(out_dir / "env" / name, text, 0o600)
    logger.info(
        "rendered %d files for %d sites in %s", len(written), len(fleet.sites), out_dir
    )
    return RenderedDeploy(tuple(written), tuple(s.id for s in fleet.sites))


def make_dev_certificates(
    cert_dir: Path,
    clients: Iterable[str],
    *,
    server_names: Sequence[str] = ("mosquitto", "localhost"),
    server_ips: Sequence[str] = ("127.0.0.1",),
    days: int = 825,
) -> None:
    """Create a private CA, a broker certificate and client certificates with openssl.

    For development, tests and a first install; production should sign with the
    organisation's CA (see ``deploy/README.md``). Writes ``ca.crt``/``ca.key``,
    ``server.crt``/``server.key`` and ``<client>.crt``/``<client>.key`` (CN = client).

    Raises
    ------
    FleetInputError
        When a client name is not a valid site id or openssl fails.
    """
    cert_dir.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        try:
            subprocess.run(
                ["openssl", *args], check=True, capture_output=True, cwd=cert_dir
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            msg = f"openssl {args[0]} failed: {exc} {detail.decode(errors='replace')}"
            raise FleetInputError(msg) from exc

    if not (cert_dir / "ca.crt").exists():
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", str(days),
            "-subj", "/CN=bessfleet-dev-ca",
        )  # fmt: skip
    san = ",".join(
        [f"DNS:{n}" for n in server_names] + [f"IP:{ip}" for ip in server_ips]
    )

    def signed(name: str, ext: str) -> None:
        (cert_dir / f"{name}.ext").write_text(ext + "\n")
        openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", str(days),
            "-extfile", f"{name}.ext",
        )  # fmt: skip
        (cert_dir / f"{name}.csr").unlink()
        (cert_dir / f"{name}.ext").unlink()

    signed("server", f"subjectAltName={san}\nextendedKeyUsage=serverAuth")
    for name in clients:
        if not name or "/" in name or name.startswith(".") or name in ("ca", "server"):
            msg = f"client certificate name {name!r} is not a valid site id"
            raise FleetInputError(msg)
        signed(name, "extendedKeyUsage=clientAuth")
    for key in cert_dir.glob("*.key"):
        key.chmod(0o600)
