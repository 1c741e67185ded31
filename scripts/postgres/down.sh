#!/usr/bin/env bash
# Stops the local PostgreSQL cluster started by up.sh.
set -euo pipefail
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if [[ $(id -u) -eq 0 ]]; then pg_ctlcluster "$ver" main stop; else sudo pg_ctlcluster "$ver" main stop; fi
