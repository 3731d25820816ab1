#!/bin/bash
# The main job: installs what is missing, builds, then runs tools/demo.py
# (private PostgreSQL, driftd, a stream in which one slice drifts, the
# drift history from SQL, the signed webhook the drift caused).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
exec /usr/bin/python3 tools/demo.py
