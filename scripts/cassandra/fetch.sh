#!/usr/bin/env bash
# Fetches the pinned cassandra-all jar and its runtime dependencies into
# .cache/cassandra/lib (once; later runs return at once). See docs/cassandra.md.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

c_fetch_jars
c_build_tools
c_log "cassandra-all $KCK_C_VERSION: $(find "$KCK_C_LIB_DIR" -name '*.jar' | wc -l) jars in $KCK_C_LIB_DIR"
