#!/usr/bin/env bash
# Install the Debian packages the local HPC system needs. Idempotent: does
# nothing (no network) when everything is already installed.
set -euo pipefail

PACKAGES=(
  slurm-wlm slurmdbd slurm-client   # slurmctld, slurmd, slurmdbd and the client commands
  munge                             # Slurm authentication
  mariadb-server mariadb-client     # accounting database behind slurmdbd
  openssh-server openssh-client     # sshd for the users, ssh-keygen/ssh-keyscan
  procps util-linux                 # ps/pgrep for debugging; runuser/flock used by up.sh/down.sh
  iproute2                          # ip route: quickack on the loopback route (up.sh)
  wrk                               # HTTP load generator of bench/zero_trust.py
  chromium                          # headless browser of the /docs test (tests/integration/test_openapi_gateway.py)
  prometheus                        # scrapes the services' and Envoy's metrics (make up; promtool checks its rules)
  redis-server                      # the tasks store for several replicas (tests start their own)
)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-packages.sh: must run as root" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  # dpkg-query prints "install ok installed" only for fully installed packages
  if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-packages.sh: all packages present"
  exit 0
fi

echo "install-packages.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# Keep the packages' init scripts from starting system daemons (munged on the
# default socket, mariadb on 3306, sshd on 22): up.sh starts its own copies.
# Only add a policy-rc.d when the machine has none, and remove only our own.
POLICY=/usr/sbin/policy-rc.d
if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\n# temporary, from firecrest-mesh cluster/install-packages.sh\nexit 101\n' >"$POLICY"
  chmod 755 "$POLICY"
  trap 'rm -f "$POLICY"' EXIT
fi

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}" >/dev/null
echo "install-packages.sh: done"
