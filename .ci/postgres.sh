#!/usr/bin/env bash
# Makes sure the PostgreSQL the tests expect is running: 127.0.0.1:5432, user postgres, trust
# auth from 127.0.0.1, a database named `test`. Installs the server from Debian's packages when
# it is missing, allows trust auth for loopback, and starts the newest installed cluster.
# Idempotent and quick when everything is already there (`make test` calls it every time).
set -euo pipefail

say() { echo "postgres: $*"; }
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ready && psql -h 127.0.0.1 -U postgres -d test -Atqc 'select 1' >/dev/null 2>&1; then
  exit 0
fi

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  say "not installed: installing it from Debian's packages (apt-get install postgresql)"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq postgresql >/dev/null
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if [ ! -d "/etc/postgresql/$version/main" ]; then
  say "creating cluster $version/main"
  as_root pg_createcluster "$version" main >/dev/null
fi

# Trust for loopback TCP only, first in the file so it wins over the packaged scram lines.
hba="/etc/postgresql/$version/main/pg_hba.conf"
rule="host all all 127.0.0.1/32 trust"
if ! as_root grep -qxF "$rule" "$hba"; then
  say "allowing trust auth from 127.0.0.1 in $hba"
  as_root sed -i "1i $rule" "$hba"
  if ready; then as_root pg_ctlcluster "$version" main reload; fi
fi

if ! ready; then
  say "starting cluster $version/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 60); do ready && break; sleep 0.5; done
  ready || { say "did not start; see /var/log/postgresql/postgresql-$version-main.log" >&2; exit 1; }
fi

if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc "select 1 from pg_database where datname = 'test'" | grep -q 1; then
  say "creating database test"
  psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE test'
fi
say "ready on 127.0.0.1:5432"
