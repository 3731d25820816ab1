#!/bin/bash
# The whole test suite on a fresh Debian machine: installs what is missing,
# builds with warnings as errors, runs unit, PostgreSQL and integration
# tests, the unit tests again under ASan/UBSan, and each fuzz harness for a
# bounded time.  Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
logs=()

tools/deps.sh || exit 1

setup() {	# dir, meson options...
	local dir=$1
	shift
	if [ -d "$dir" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
}

step() {
	echo "== $*"
}

step "build (werror)"
setup build --werror -Dtests=enabled || exit 1
ninja -C build || exit 1

step "unit, pg and integration tests"
meson test -C build --print-errorlogs --num-processes 2
logs+=(build/meson-logs/testlog.json)

step "unit tests under ASan/UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
setup build-asan --werror -Dtests=enabled -Db_sanitize=address,undefined \
	-Db_lundef=false -Dbuildtype=debug || exit 1
ninja -C build-asan || exit 1
meson test -C build-asan --suite unit --print-errorlogs --num-processes 2 \
	--logbase asan
logs+=(build-asan/meson-logs/asan.json)

if command -v clang >/dev/null; then
	step "fuzzing, ${FUZZ_SECONDS}s per harness"
	CC=clang setup build-fuzz -Dfuzz=true -Dfuzz_seconds="$FUZZ_SECONDS" \
		-Dtests=disabled -Db_lundef=false -Dbuildtype=debugoptimized ||
		exit 1
	ninja -C build-fuzz || exit 1
	meson test -C build-fuzz --suite fuzz \
		--print-errorlogs --num-processes 2 --logbase fuzz
	[ -f build-fuzz/meson-logs/fuzz.json ] &&
		logs+=(build-fuzz/meson-logs/fuzz.json)
fi

tools/test_summary.py "${logs[@]}"
