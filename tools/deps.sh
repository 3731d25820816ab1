#!/bin/bash
# Installs what building, testing and the demo need, from Debian's packages.
# Does nothing when everything is present; needs root otherwise.
set -euo pipefail

PACKAGES=(
	gcc meson ninja-build pkg-config
	libevent-dev libpq-dev libopenblas-dev liblapacke-dev libinih-dev
	libsystemd-dev libjson-c-dev libcmocka-dev libssl-dev openssl
	postgresql postgresql-client
	python3 python3-numpy python3-scipy python3-sklearn
	python3-prometheus-client chromium
	clang libclang-rt-14-dev
	systemd strace python3-seccomp openssl
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "driftd needs these Debian packages: ${missing[*]}" >&2
	echo "run: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
