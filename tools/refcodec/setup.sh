#!/usr/bin/env bash
# Creates .venv-ref at the repository root: a virtualenv of its own with the reference ISO 15118 stack
# (`iso15118` 0.31.2, "Josev"), whose EXI codec (EXIficient, a jar driven over py4j) is served by
# tools/refcodec/refserver.py. v2gstack never imports it. Idempotent: a stamp file makes a second run
# a quick no-op. Needs Java (a JVM runs the codec). `PYTHON=... bash tools/refcodec/setup.sh` picks the
# interpreter (default python3.11).
set -euo pipefail

ISO15118_VERSION=0.31.2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv-ref"
stamp="$venv/.installed-iso15118-$ISO15118_VERSION-2"
say() { echo "refcodec setup: $*"; }

if ! command -v java >/dev/null 2>&1 || ! java -version >/dev/null 2>&1; then
    say "no working 'java' on PATH. The reference EXI codec runs in a JVM: install a Java runtime" >&2
    say "(Java 11 or newer, e.g. the Debian package openjdk-17-jre-headless) and run this again." >&2
    exit 1
fi

if [ -f "$stamp" ] && [ -x "$venv/bin/python" ]; then
    say ".venv-ref is ready (iso15118 $ISO15118_VERSION)"
    exit 0
fi

python="${PYTHON:-python3.11}"
if ! command -v "$python" >/dev/null 2>&1; then
    say "$python not found, using python3"
    python=python3
fi
say "creating .venv-ref with $("$python" --version 2>&1)"
"$python" -m venv "$venv"
say "installing iso15118==$ISO15118_VERSION (and py4j with it)"
# aiofile: the reference EVCC imports it without declaring it as a dependency
"$venv/bin/python" -m pip install -q --disable-pip-version-check "iso15118==$ISO15118_VERSION" aiofile

say "checking the codec (starts a JVM)"
answer="$(echo '{"op": "version"}' | "$venv/bin/python" "$here/refserver.py")"
case "$answer" in
    *'"ok": true'*) say "reference codec answers: $answer" ;;
    *) say "the reference codec does not answer as expected: $answer" >&2; exit 1 ;;
esac
echo "$ISO15118_VERSION" > "$stamp"
say "done"
