#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the benchmarks, made the way tests/support/pg_cluster.cpp
# makes the tests' ones: its own private directory, its own port, its own postmaster. It never
# uses a system cluster, the default port or its socket directory (/run/postgresql).
#   bench/pg-cluster.sh start             prints DIR, a new private directory holding the cluster
#   bench/pg-cluster.sh uri DIR [db]      prints the libpq URI of database db (default postgres)
#   bench/pg-cluster.sh reset DIR db      drops database db if it exists and creates it empty
#   bench/pg-cluster.sh psql DIR db ...   runs psql on database db with the remaining arguments
#   bench/pg-cluster.sh stop DIR          stops that cluster's postmaster (by its pid) and removes DIR
# DIR is made with mktemp -d under PG_PARENT (default /var/tmp: the server's user must be able to
# enter every directory above it, and /tmp is root's alone here). As root, initdb and postgres run
# as nobody:nogroup (setpriv), which owns DIR. The server listens on a unix socket only (-k DIR,
# listen_addresses=''), with this machine's durable settings: fsync=on, synchronous_commit=on.
# Environment: PG_BINDIR (/usr/lib/postgresql/15/bin), PG_PARENT (/var/tmp), PG_EXTRA (more
# server arguments for start, e.g. "-c shared_preload_libraries=pg_stat_statements" to profile).
set -euo pipefail
bindir=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
marker=.dsr-bench-pg-cluster  # only a directory holding it is ever stopped or removed
superuser=postgres

die() { echo "pg-cluster.sh: $*" >&2; exit 1; }

# The prefix that runs a server program as the cluster's owner, with nothing from this
# environment (PGHOST, PGDATA, ...) that could lead it elsewhere.
as_owner=(env -i PATH=/usr/bin:/bin LANG=C LC_ALL=C TZ=UTC)
if [ "$(id -u)" -eq 0 ]; then
  as_owner+=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi

check_dir() {  # DIR: one this script made, else refuse
  [ -n "${1:-}" ] && [ -d "$1" ] && [ -f "$1/$marker" ] ||
    die "$1 is not a cluster directory made by 'bench/pg-cluster.sh start'"
}

port_of() { cat "$1/port"; }

uri() {  # DIR [db]
  # host= a directory: libpq connects to <DIR>/.s.PGSQL.<port>, the only socket this server has.
  echo "postgresql:///${2:-postgres}?host=$1&port=$(port_of "$1")&user=$superuser"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  [ -x "$bindir/initdb" ] && [ -x "$bindir/postgres" ] ||
    die "no initdb and postgres in $bindir: run scripts/install-deps bench (postgresql-15)"
  local parent=${PG_PARENT:-/var/tmp}
  local dir
  dir=$(mktemp -d "$parent/dsr-bench-pg.XXXXXX")
  touch "$dir/$marker"
  if [ "$(id -u)" -eq 0 ]; then
    chown nobody:nogroup "$dir"
    # The server's user must be able to enter every directory above DIR.
    setpriv --reuid=nobody --regid=nogroup --clear-groups -- test -x "$dir" ||
      { rm -rf "$dir"; die "nobody may not enter $dir: set PG_PARENT to a directory it can reach"; }
  fi
  local port
  port=$(free_port)
  echo "$port" > "$dir/port"
  if ! "${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -A trust -E UTF8 --locale=C -U "$superuser" \
       --no-instructions > "$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2; rm -rf "$dir"; die "initdb failed"
  fi
  # setsid, env and setpriv each exec the next: the background job's pid is the postmaster's
  # (its own session, so a Ctrl-C meant for the benchmark reaches it only through stop).
  (cd "$dir" && exec setsid "${as_owner[@]}" "$bindir/postgres" -D "$dir/data" -k "$dir" \
     -p "$port" -c listen_addresses= -c fsync=on -c synchronous_commit=on \
     -c dynamic_shared_memory_type=mmap ${PG_EXTRA:-} < /dev/null >> "$dir/postgres.log" 2>&1) &
  echo $! > "$dir/postmaster.pid"
  for _ in $(seq 600); do
    if "$bindir/pg_isready" -q -h "$dir" -p "$port" -U "$superuser"; then
      # The server's own record of its pid, should setsid have had to fork.
      head -n 1 "$dir/data/postmaster.pid" > "$dir/postmaster.pid"
      echo "$dir"; return 0
    fi
    kill -0 "$(cat "$dir/postmaster.pid")" 2>/dev/null || break
    sleep 0.05
  done
  cat "$dir/postgres.log" >&2
  stop "$dir"
  die "postgres did not accept connections"
}

stop() {
  check_dir "$1"
  local dir=$1 pid
  pid=$(cat "$dir/postmaster.pid" 2>/dev/null || true)
  # Only this cluster's postmaster: its pid, checked against its command line.
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
     tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "-D $dir/data"; then
    kill -INT "$pid"  # fast shutdown
    for _ in $(seq 600); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "pg-cluster.sh: postgres $pid did not stop within 30 s of SIGINT: killed" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -rf "$dir"
}

psql_in() {  # DIR db args...
  local dir=$1 db=$2
  shift 2
  PGCONNECT_TIMEOUT=10 PGOPTIONS='-c client_min_messages=warning' "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d "$(uri "$dir" "$db")" "$@"
}

reset_db() {  # DIR db
  psql_in "$1" postgres -c "DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)" -c "CREATE DATABASE \"$2\""
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  uri) check_dir "${2:-}"; uri "$2" "${3:-}" ;;
  reset) check_dir "${2:-}"; reset_db "$2" "${3:?database name}" ;;
  psql) check_dir "${2:-}"; d=$2; db=${3:?database name}; shift 3; psql_in "$d" "$db" "$@" ;;
  *) die "usage: pg-cluster.sh start | uri DIR [db] | reset DIR db | psql DIR db ARGS | stop DIR" ;;
esac
