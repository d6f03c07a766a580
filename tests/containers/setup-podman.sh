#!/usr/bin/env bash
# Make Debian's podman usable as root on a bare machine (the container tests' runtime):
# runc as the OCI runtime and sane ulimits. Idempotent; writes /etc/containers/containers.conf
# only when it does not exist yet.
set -euo pipefail
conf=/etc/containers/containers.conf
if [[ ! -s $conf ]]; then
    mkdir -p /etc/containers
    cat >"$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
CONF
fi
podman info >/dev/null
echo "podman ready ($(podman --version))" >&2
