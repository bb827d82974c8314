#!/usr/bin/env bash
# The whole suite as two pytest processes side by side (what `make test` runs): the modules that mostly wait (the
# reference stack's sessions and JVMs, pip) in one, everything else in file
# order in the other, so the suite takes the longer of the two, not their sum, and the timing-sensitive tests keep a
# core of their own. The side run's output follows the main run's. Exit status: the main run's, else the side run's.
# Extra arguments go to both runs. `pytest` alone runs the same tests in one process.
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PY:-.venv/bin/python}"
side=(
    tests/test_iso15118_interop.py tests/test_iso15118_interop20.py tests/test_iso15118_pnc_interop.py
    tests/test_iso15118_netns_harness.py tests/test_iso15118_xmldsig20.py tests/test_bridge_interop.py
    tests/test_bridge_interop16.py tests/test_bridge_interop20.py tests/test_v2x_interop20.py tests/test_refcodec.py
    tests/test_light_install.py
)
ignore=()
for f in "${side[@]}"; do ignore+=("--ignore=$f"); done
log="$(mktemp)"
base="$(mktemp -d)"
trap 'rm -rf "$log" "$base"' EXIT
"$py" -m pytest -q -p no:cacheprovider --basetemp="$base/side" "${side[@]}" "$@" >"$log" 2>&1 &
side_pid=$!
"$py" -m pytest -q "${ignore[@]}" "$@"
main=$?
wait "$side_pid"
side_status=$?
echo "---- the side run (${#side[@]} modules that mostly wait) ----"
cat "$log"
if [ "$main" -ne 0 ]; then exit "$main"; fi
exit "$side_status"
