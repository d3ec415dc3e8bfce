#!/usr/bin/env bash
# Two Promos nodes behind nginx on one PostgreSQL: concurrent code issues, promo code redeems
# and offer claims through nginx, one node restarted mid-load, every rule checked in SQL
# (deploy/two_nodes.py prints PASS or FAIL for each and exits 1 if any failed).
#
#   sudo deploy/test_nginx_two_nodes.sh [--workers N] [--postgres URL] [--keep]
#                                       [--citus [--citus-worker worker2]]
#
# --citus: --postgres is the coordinator of a cluster of deploy/citus/cluster.sh (with its
# PROMOS_CITUS_DIR): the database is made on every node and distributed, and a Citus worker is
# restarted mid-load too; Promos must recover by itself (docs/deployment.md).
#
# Not run in CI: it installs Debian's nginx with apt-get when nginx is missing (that needs
# root), and it uses the ports 127.0.0.1:8100 (nginx), :8101 and :8102 (Promos; another
# three with PROMOS_NGINX_TEST_PORT=8350: nginx there, Promos on the next two). It runs its
# own nginx (own prefix, pid and logs in a temporary directory), never the system's, and
# stops every process it started. PostgreSQL: --postgres or PROMOS_TEST_POSTGRES_URL
# (default postgresql://postgres@127.0.0.1:5432/postgres), a user that may create databases;
# the script creates a fresh database and drops it after.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "nginx is not installed; run this script as root to install Debian's nginx" \
             "package, or install it first (apt-get install nginx)" >&2
        exit 2
    fi
    echo "installing nginx (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi
export PATH="$PATH:/usr/sbin"

[ -x .venv/bin/python ] || make venv
exec .venv/bin/python deploy/two_nodes.py "$@"
