#!/bin/sh
# The container's entry point: find the config file where certstream's image keeps it
# (/app/config.yaml) or where certstream-server-go's image does (/app/config/config.yaml),
# unless CERTSTREAM_CONFIG names one; then become certstream (exec: it gets the signals).
set -eu
app_dir=${CERTSTREAM_APP_DIR:-/app}
if [ -z "${CERTSTREAM_CONFIG:-}" ]; then
    for candidate in "$app_dir/config.yaml" "$app_dir/config/config.yaml"; do
        if [ -f "$candidate" ]; then
            CERTSTREAM_CONFIG=$candidate
            export CERTSTREAM_CONFIG
            break
        fi
    done
fi
exec certstream "$@"
