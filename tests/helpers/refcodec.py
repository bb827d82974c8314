"""Client for the reference EXI codec (Josev's EXIficient, `iso15118` 0.31.2) served from .venv-ref.

The codec never runs inside v2gstack's interpreter: `RefCodec` starts tools/refcodec/refserver.py under
.venv-ref/bin/python (made by `make ref-venv`) and talks JSON lines with it. Standard library only.

    with RefCodec() as ref:
        data = ref.encode("din", {"V2G_Message": {...}})
        doc = ref.decode("din", data)
        enc_us, dec_us = ref.time("din", doc, data, n=200)

Namespaces are v2gstack's keys (appHand, din, iso2, iso20, iso20_ac, iso20_dc, iso20_wpt, iso20_acdp,
xmldsig); the reference codec cannot code iso20_wpt and iso20_acdp. What it can do with fragments and
how it treats its JSON is described at the top of tools/refcodec/refserver.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
import tempfile

from helpers.paths import ROOT

VENV_PYTHON = ROOT / ".venv-ref" / "bin" / "python"
SERVER = ROOT / "tools" / "refcodec" / "refserver.py"


class RefCodecError(Exception):
    """The reference codec (or its server) refused a request; the message is the server's."""


class RefCodec:
    _available: bool | None = None

    def __init__(self, timeout: float = 300.0) -> None:
        """Start the server (a JVM starts with it, about 2 s). `timeout`: seconds to wait for an answer."""
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            [str(VENV_PYTHON), str(SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
        )
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._proc.stdout, selectors.EVENT_READ)

    @classmethod
    def available(cls) -> bool:
        """Whether .venv-ref exists and works: Java runs and the reference codec answers (cached)."""
        if cls._available is None:
            cls._available = False
            if VENV_PYTHON.exists() and shutil.which("java"):
                try:
                    with cls(timeout=60) as ref:
                        ref._call({"op": "version"})
                    cls._available = True
                except (OSError, RefCodecError):
                    pass
        return cls._available

    def version(self) -> dict:
        """{"codec": jar codec version, "iso15118": package version}."""
        return self._call({"op": "version"})

    def encode(self, ns: str, doc: dict, fragment: bool = False, check: bool = True) -> bytes:
        """EXI bytes for `doc`. With `check`, the codec must decode its stream back to `doc` exactly
        (it silently drops or rewrites what it does not understand otherwise)."""
        answer = self._call({"op": "encode", "ns": ns, "json": doc, "fragment": fragment, "check": check})
        return bytes.fromhex(answer["exi"])

    def decode(self, ns: str, data: bytes, fragment: bool = False) -> dict:
        return self._call({"op": "decode", "ns": ns, "exi": data.hex(), "fragment": fragment})["json"]

    def time(self, ns: str, doc: dict, data: bytes, fragment: bool = False, n: int = 200) -> tuple[float, float]:
        """Median microseconds per encode(doc) and per decode(data) call, as a Josev user pays them
        (JSON text through py4j into the JVM and back), over `n` calls after `n` warm-up calls.
        A call costs 10-30 ms outside appHand, so n=200 takes several seconds per message."""
        answer = self._call(
            {"op": "time", "ns": ns, "json": doc, "exi": data.hex(), "fragment": fragment, "n": n}
        )
        return answer["encode_us"], answer["decode_us"]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()  # the server ends at end of input, and its JVM with it
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._selector.close()
        self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> RefCodec:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------------

    def _call(self, request: dict) -> dict:
        try:
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise RefCodecError(self._died()) from None
        answer = json.loads(self._read_line())
        if not answer.get("ok"):
            raise RefCodecError(answer.get("error", "unknown error"))
        return answer

    def _read_line(self) -> bytes:
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            if not self._selector.select(self.timeout):
                raise RefCodecError(f"no answer from the reference codec server within {self.timeout} s")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise RefCodecError(self._died())
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _died(self) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=10)
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace").strip()[-2000:]
        return f"the reference codec server stopped (exit code {self._proc.returncode}): {tail}"
