#!/bin/sh
# bessfleet container entrypoint: one image, several roles.
#
#   docker-entrypoint.sh ROLE [ARGS...]
#
# Roles (BESSFLEET_ROLE is the default when no argument is given):
#   api            migrate the store (bessfleet db upgrade), load BESSFLEET_FLEET_FILE if set,
#                  then serve the API + dashboard on 0.0.0.0:${BESSFLEET_API_PORT:-8000}
#   migrate        only migrate the store (a Kubernetes Job / compose one-shot)
#   ingest         one telemetry ingest worker of the shared subscription group
#   scheduler      the unattended operator of every market (bessfleet operate): forecasts,
#                  day-ahead plan and bids, awards, intraday setpoints, settlement
#   dask-scheduler a Dask scheduler on :8786
#   dask-worker    a Dask worker connected to BESSFLEET_DASK_ADDRESS
#   healthcheck    exit 0 when this container's role is healthy (the API answers /healthz)
#   anything else  is executed as given (e.g. `bessfleet version`, `sh`)
#
# BESSFLEET_ENTRYPOINT_DRY_RUN=1 prints the final command instead of executing it (the
# migration still runs): the tests use it to check each role without starting servers.
set -eu

log() { printf '%s entrypoint[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ROLE" "$*" >&2; }

run() {
  if [ "${BESSFLEET_ENTRYPOINT_DRY_RUN:-0}" = "1" ]; then
    printf 'exec:'
    for arg in "$@"; do printf ' %s' "$arg"; done
    printf '\n'
    exit 0
  fi
  exec "$@"
}

migrate() {
  # The database may still be starting (compose, a fresh pod): retry for a while.
  wait_s="${BESSFLEET_DB_WAIT_S:-60}"
  start=$(date +%s)
  until bessfleet db upgrade; do
    if [ $(( $(date +%s) - start )) -ge "$wait_s" ]; then
      log "the store did not accept the migration within ${wait_s}s; giving up"
      exit 1
    fi
    log "store not ready; retrying the migration in 2s"
    sleep 2
  done
}

# The database password comes from a mounted secret, never from the URL: libpq (psycopg)
# reads PGPASSWORD.
if [ -n "${BESSFLEET_DB_PASSWORD_FILE:-}" ] && [ -r "$BESSFLEET_DB_PASSWORD_FILE" ]; then
  PGPASSWORD="$(cat "$BESSFLEET_DB_PASSWORD_FILE")"
  export PGPASSWORD
fi

if [ "$#" -eq 0 ]; then
  set -- "${BESSFLEET_ROLE:-api}"
fi
ROLE="$1"
shift

case "$ROLE" in
  api)
    migrate
    if [ -n "${BESSFLEET_FLEET_FILE:-}" ]; then
      log "loading the fleet file ${BESSFLEET_FLEET_FILE}"
      bessfleet fleet load "$BESSFLEET_FLEET_FILE"
    fi
    run bessfleet serve --host 0.0.0.0 --port "${BESSFLEET_API_PORT:-8000}" "$@"
    ;;
  migrate)
    migrate
    log "store migrated"
    ;;
  ingest)
    # A stable client id per replica keeps the persistent MQTT session across restarts
    # (StatefulSet pod name or compose service name); the share group spreads the stream.
    run bessfleet ingest \
      --client-id "${BESSFLEET_INGEST_CLIENT_ID:-$(hostname)}" \
      --share "${BESSFLEET_INGEST_SHARE_GROUP:-bessfleet-ingest}" "$@"
    ;;
  scheduler)
    run bessfleet operate --fleet "${BESSFLEET_FLEET_FILE:-/etc/bessfleet/fleet.toml}" \
      --market-mode "${BESSFLEET_MARKET_MODE:-iso}" \
      --export-dir "${BESSFLEET_EXPORT_DIR:-/var/lib/bessfleet/exports}" "$@"
    ;;
  dask-scheduler)
    run dask scheduler --host 0.0.0.0 --port "${BESSFLEET_DASK_PORT:-8786}" \
      --dashboard-address ":${BESSFLEET_DASK_DASHBOARD_PORT:-8787}" "$@"
    ;;
  dask-worker)
    : "${BESSFLEET_DASK_ADDRESS:?BESSFLEET_DASK_ADDRESS must name the Dask scheduler (tcp://host:8786)}"
    run dask worker "$BESSFLEET_DASK_ADDRESS" \
      --nworkers "${BESSFLEET_DASK_NWORKERS:-1}" --nthreads 1 \
      --memory-limit "${BESSFLEET_DASK_MEMORY_LIMIT:-auto}" --no-dashboard "$@"
    ;;
  healthcheck)
    case "${BESSFLEET_ROLE:-api}" in
      api)
        exec python -c 'import os, sys, urllib.request
url = "http://127.0.0.1:%s/healthz" % os.environ.get("BESSFLEET_API_PORT", "8000")
try:
    sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)
except OSError:
    sys.exit(1)'
        ;;
      *)
        # Non-HTTP roles: alive while PID 1 runs; Kubernetes uses its own probes.
        exit 0
        ;;
    esac
    ;;
  *)
    run "$ROLE" "$@"
    ;;
esac
