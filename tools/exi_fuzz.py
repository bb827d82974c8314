"""Fuzz the EXI decoder (`make fuzz`): every failure on hostile input must be an ExiDecodeError.

Inputs are random byte strings and mutations of a seed corpus (the reference vectors plus encoded
random documents of every namespace and root, in document and fragment mode). Each input is decoded
with a namespace and fragment flag; when it decodes, the result is re-encoded and decoded again and
must come back unchanged (re-encoding may refuse it with ExiEncodeError: the decoder does not check
facets). Anything else is a finding: another exception, a round-trip mismatch, an input that takes
longer than --timeout seconds (workers are watched and killed), a MemoryError under the workers'
address-space limit, or a worker that dies.

Input number i of a run is a pure function of (--seed, i), so `--replay I` regenerates and re-checks it.

    python tools/exi_fuzz.py --count 1000000 [--seed N] [--jobs 2] [--keep-going]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from v2gstack import exi  # noqa: E402
from v2gstack.exi import ExiDecodeError, ExiEncodeError, samples  # noqa: E402

DEFAULT_VECTORS = ROOT.parent / "shared" / "vectors" / "exi-reference.jsonl"
VECTOR_NS = {
    "SAP": "appHand",
    "DIN_MSG_DEF": "din",
    "ISO_V2_MSG_DEF": "iso2",
    "ISO_V20_COMMON_MSG": "iso20",
    "ISO_V20_AC": "iso20_ac",
    "ISO_V20_DC": "iso20_dc",
    "XML_DSIG": "xmldsig",
}
OUTCOMES = ("roundtrip_ok", "reencode_rejected", "decode_error")


# ---------------------------------------------------------------------------------------- seed corpus
@dataclass(frozen=True)
class Seed:
    ns: str
    fragment: bool
    data: bytes
    origin: str


def vector_is_fragment(ns: str, root: str) -> bool:
    """How the reference vectors were coded (see the vectors' README)."""
    return (
        ns == "xmldsig"
        or (ns == "iso2" and root != "V2G_Message")
        or (ns == "iso20" and root == "PnC_AReqAuthorizationMode")
    )


def load_vectors(path: Path = DEFAULT_VECTORS) -> list[tuple[str, bool, bytes, dict]]:
    """The reference vectors as (namespace key, fragment, EXI bytes, JSON view); [] when absent."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        v = json.loads(line)
        ns = VECTOR_NS[v["ns"]]
        root = next(iter(v["json"]))
        out.append((ns, vector_is_fragment(ns, root), bytes.fromhex(v["exi"]), v["json"]))
    return out


def build_corpus(seed: int, docs_per_root: int = 2, vectors: Path = DEFAULT_VECTORS) -> list[Seed]:
    """Reference vectors + `docs_per_root` encoded random documents of every namespace/root/mode."""
    corpus = [Seed(ns, frag, data, "vector") for ns, frag, data, _ in load_vectors(vectors)]
    rng = random.Random(seed)
    for ns in exi.NAMESPACES:
        for frag in (False, True):
            for root in samples.message_roots(ns, fragment=frag):
                for _ in range(docs_per_root):
                    doc = samples.random_document(ns, root, rng, fragment=frag)
                    corpus.append(Seed(ns, frag, exi.encode(ns, doc, fragment=frag), f"random:{root}"))
    return corpus


# ---------------------------------------------------------------------------------------- mutations
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0x81, 0xFE, 0xFF, 0x40, 0x20, 0xC0)


def bits_insert(data: bytes, pos: int, value: int, k: int) -> bytes:
    """Insert k bits (`value`) at bit position `pos`, padding the tail with zero bits to whole bytes."""
    nb = len(data) * 8
    v = int.from_bytes(data, "big")
    hi, lo = v >> (nb - pos), v & ((1 << (nb - pos)) - 1)
    total = nb + k
    pad = -total % 8
    out = ((((hi << k) | value) << (nb - pos)) | lo) << pad
    return out.to_bytes((total + pad) // 8, "big")


def bits_delete(data: bytes, pos: int, k: int) -> bytes:
    nb = len(data) * 8
    k = min(k, nb - pos)
    v = int.from_bytes(data, "big")
    hi, lo = v >> (nb - pos), v & ((1 << (nb - pos - k)) - 1)
    total = nb - k
    pad = -total % 8
    out = ((hi << (nb - pos - k)) | lo) << pad
    return out.to_bytes((total + pad) // 8, "big")


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def _bit_pos(rng: random.Random, data: bytes) -> int:
    """A bit position, mostly after the header byte (mutating the header mostly gives header errors)."""
    nb = len(data) * 8
    if nb <= 8 or rng.random() < 0.05:
        return rng.randint(0, nb)
    return rng.randint(8, nb)


def _long_run(rng: random.Random) -> int:
    """Lengths of 0xFF runs: mostly short, sometimes past 64-bit, rarely thousands of bytes."""
    p = rng.random()
    if p < 0.6:
        return rng.randint(1, 12)
    if p < 0.9:
        return rng.randint(13, 300)
    if p < 0.98:
        return rng.randint(301, 1500)
    if p < 0.9997:
        return rng.randint(1501, 4000)
    return rng.randint(64 * 1024, 256 * 1024)  # is decoding time linear in the input length?


def mutate_once(rng: random.Random, data: bytes, corpus: list[Seed]) -> tuple[bytes, str]:
    op = rng.randrange(13)
    nb = len(data) * 8
    if op == 0 and nb:  # flip a few bits
        v = int.from_bytes(data, "big")
        for _ in range(rng.randint(1, 4)):
            v ^= 1 << (nb - 1 - min(nb - 1, _bit_pos(rng, data)))
        return v.to_bytes(len(data), "big"), "bitflip"
    if op == 1 and data:  # replace bytes
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b)) if len(b) == 1 or rng.random() < 0.05 else rng.randrange(1, len(b))
            b[i] = rng.choice(INTERESTING) if rng.random() < 0.5 else rng.randrange(256)
        return bytes(b), "byte"
    if op == 2:  # truncate (byte or bit granularity)
        if rng.random() < 0.5:
            return data[: rng.randint(0, len(data))], "truncate"
        pos = _bit_pos(rng, data)
        return bits_delete(data, pos, nb - pos), "truncate_bits"
    if op == 3:  # insert random bytes
        i = rng.randint(0, len(data))
        return data[:i] + rng.randbytes(rng.randint(1, 16)) + data[i:], "insert"
    if op == 4:  # insert random bits (everything after shifts: bit-packed streams)
        k = rng.randint(1, 15)
        return bits_insert(data, _bit_pos(rng, data), rng.getrandbits(k), k), "insert_bits"
    if op == 5 and nb:  # delete bits
        return bits_delete(data, _bit_pos(rng, data), rng.randint(1, 24)), "delete_bits"
    if op == 6 and data:  # delete a byte range
        i = rng.randrange(len(data))
        return data[:i] + data[i + rng.randint(1, 8):], "delete"
    if op == 7 and data:  # duplicate a chunk
        i = rng.randrange(len(data))
        j = min(len(data), i + rng.randint(1, 32))
        return data[:j] + data[i:j] * rng.randint(1, 4) + data[j:], "duplicate"
    if op == 8:  # splice: the first bits of this seed + the last bits of another, at any bit offsets
        other = rng.choice(corpus).data
        pos = _bit_pos(rng, data)
        head = int.from_bytes(data, "big") >> (nb - pos)
        tail_bits = len(other) * 8 - rng.randint(0, len(other) * 8)
        tail = int.from_bytes(other, "big") & ((1 << tail_bits) - 1)
        total = pos + tail_bits
        pad = -total % 8
        return (((head << tail_bits) | tail) << pad).to_bytes((total + pad) // 8, "big"), "splice"
    if op == 9:  # a huge unsigned varint: a run of 0xFF (continuation bits), maybe terminated
        n = _long_run(rng)
        run = b"\xff" * n + (bytes([rng.randrange(128)]) if rng.random() < 0.7 else b"")
        pos = _bit_pos(rng, data)
        if rng.random() < 0.5:  # overwrite instead of insert
            rest = bits_delete(data, pos, len(run) * 8)
            return bits_insert(rest, pos, int.from_bytes(run, "big"), len(run) * 8), "varint_overwrite"
        return bits_insert(data, pos, int.from_bytes(run, "big"), len(run) * 8), "varint_insert"
    if op == 10:  # a length field claiming ~4 GB / 2**63 / 2**64 etc.
        n = rng.choice((2**31, 2**32 - 1, 2**32 + 2, 2**63, 2**64 - 1, 10**12, 2**70 + 3))
        run = varint(n)
        return bits_insert(data, _bit_pos(rng, data), int.from_bytes(run, "big"), len(run) * 8), "big_length"
    if op == 11:  # trailing garbage
        return data + rng.randbytes(rng.randint(1, 64)), "append"
    # a random field of ones or zeros (event codes at their maximum / minimum)
    k = rng.randint(1, 32)
    pos = _bit_pos(rng, data)
    rest = bits_delete(data, pos, k) if pos < nb else data
    return bits_insert(rest, pos, (1 << k) - 1 if rng.random() < 0.5 else 0, k), "fill_bits"


def _random_length(rng: random.Random) -> int:
    p = rng.random()
    if p < 0.5:
        return rng.randint(0, 16)
    if p < 0.85:
        return rng.randint(17, 256)
    if p < 0.98:
        return rng.randint(257, 4096)
    return rng.randint(4097, 32768)


def make_input(corpus: list[Seed], seed: int, i: int) -> tuple[str, bool, bytes, str]:
    """Input number i of run `seed`: (namespace, fragment, bytes, how it was made)."""
    rng = random.Random((seed << 40) + i)
    p = rng.random()
    if p < 0.08:  # random bytes, mostly behind a valid header
        data = rng.randbytes(_random_length(rng))
        if data and rng.random() < 0.7:
            data = b"\x80" + data[1:]
        return rng.choice(exi.NAMESPACES), rng.random() < 0.5, data, "random"
    base = rng.choice(corpus)
    ns, frag = base.ns, base.fragment
    if rng.random() < 0.08:  # decode with another namespace / mode
        ns, frag = rng.choice(exi.NAMESPACES), rng.random() < 0.5
    if p < 0.12:  # valid prefix + random tail
        cut = rng.randint(1, max(1, len(base.data)))
        return ns, frag, base.data[:cut] + rng.randbytes(_random_length(rng)), "prefix+random"
    data = base.data
    ops = []
    for _ in range(min(8, 1 + int(rng.expovariate(0.9)))):
        data, op = mutate_once(rng, data, corpus)
        ops.append(op)
    return ns, frag, data, "+".join(ops)


# ---------------------------------------------------------------------------------------- checking
class Finding(Exception):
    """A codec misbehaviour: the fuzzer stops (or, with --keep-going, records it)."""


class RoundTripMismatch(Finding):
    pass


def check_input(ns: str, fragment: bool, data: bytes) -> str:
    """Decode one input; returns its outcome, raises on anything that is a codec bug."""
    try:
        doc = exi.decode(ns, data, fragment=fragment)
    except ExiDecodeError:
        return "decode_error"
    try:
        again = exi.encode(ns, doc, fragment=fragment)
    except ExiEncodeError:
        return "reencode_rejected"  # the decoder is lenient about facets (lengths, string patterns)
    try:
        back = exi.decode(ns, again, fragment=fragment)
    except ExiDecodeError as e:
        raise RoundTripMismatch(f"the decoder rejects what the encoder wrote for the decoded document: {e}\n"
                                f"  document: {doc!r}\n  re-encoded: {again.hex()}") from e
    if back != doc:
        raise RoundTripMismatch(
            f"decode(encode(decode(x))) != decode(x)\n  first:  {doc!r}\n  second: {back!r}\n"
            f"  re-encoded: {again.hex()}")
    return "roundtrip_ok"


def signature(exc: BaseException) -> str:
    """Where an exception comes from: its type and innermost frame in the codec (for de-duplication)."""
    if isinstance(exc, RoundTripMismatch):
        return "roundtrip:" + (signature(exc.__cause__) if exc.__cause__ else "different document")
    frames = traceback.extract_tb(exc.__traceback__)
    inner = [f for f in frames if "v2gstack" in f.filename] or frames
    where = f"{Path(inner[-1].filename).name}:{inner[-1].lineno}" if inner else "?"
    return f"{type(exc).__name__}@{where}"


# ---------------------------------------------------------------------------------------- workers
# Shared per-worker slot (doubles): the parent reads them for progress and the watchdog.
CUR, T0, DONE, N_RT, N_REJ, N_ERR, SLOW, SLOW_I, RSS, FINISHED = range(10)
SLOT_SIZE = 10

CheckFn = Callable[[str, bool, bytes], str]


def _vm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _limit_memory(mem_limit_mb: int) -> None:
    """Cap the worker's address space at its current size + mem_limit_mb (allocations past it fail)."""
    base = _vm_bytes()
    if base is None or mem_limit_mb <= 0:
        return
    limit = base + mem_limit_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _worker(slot, findings, corpus: list[Seed], seed: int, start: int, stride: int, count: int,
            mem_limit_mb: int, keep_going: bool, check: CheckFn) -> None:
    _limit_memory(mem_limit_mb)
    perf = time.perf_counter
    clock = time.monotonic
    for n, i in enumerate(range(start, count, stride)):
        ns, frag, data, how = make_input(corpus, seed, i)
        slot[CUR] = i
        slot[T0] = clock()
        t = perf()
        try:
            outcome = check(ns, frag, data)
        except BaseException as e:  # every exception that is not the codec's own is a finding
            dt = perf() - t
            kind = "memory" if isinstance(e, MemoryError) else "mismatch" if isinstance(e, Finding) else "exception"
            findings.put({
                "kind": kind, "index": i, "ns": ns, "fragment": frag, "hex": data.hex(), "how": how,
                "signature": signature(e), "error": f"{type(e).__name__}: {e}",
                "traceback": "".join(traceback.format_exception(e)), "seconds": dt,
            })
            slot[DONE] += 1
            slot[T0] = 0.0
            if not keep_going:
                break
            continue
        dt = perf() - t
        slot[N_RT + OUTCOMES.index(outcome)] += 1
        if dt > slot[SLOW]:
            slot[SLOW] = dt
            slot[SLOW_I] = i
        slot[DONE] += 1
        slot[T0] = 0.0  # last: T0 == 0 means input CUR is fully counted (the watchdog relies on it)
        if n % 512 == 0:
            slot[RSS] = max(slot[RSS], _maxrss_mb())
    slot[RSS] = max(slot[RSS], _maxrss_mb())
    slot[FINISHED] = 1.0


# ---------------------------------------------------------------------------------------- driver
@dataclass
class Summary:
    count: int
    done: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    findings: list[dict] = field(default_factory=list)
    signatures: dict[str, int] = field(default_factory=dict)
    slowest: float = 0.0
    slowest_index: int = -1
    peak_rss_mb: float = 0.0
    seconds: float = 0.0
    stopped_early: bool = False

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        ok = self.outcomes["roundtrip_ok"] + self.outcomes["reencode_rejected"]
        n_find = sum(self.signatures.values())
        hangs = sum(v for k, v in self.signatures.items() if k.startswith("hang"))
        return (
            f"SUMMARY inputs={self.done}/{self.count} decoded_ok={ok} "
            f"(roundtrip_ok={self.outcomes['roundtrip_ok']} reencode_rejected={self.outcomes['reencode_rejected']}) "
            f"exi_decode_error={self.outcomes['decode_error']} findings={n_find} "
            f"(distinct={len(self.signatures)} hangs={hangs}) duration={self.seconds:.1f}s "
            f"rate={self.rate:,.0f}/s slowest={self.slowest * 1000:.1f}ms (input #{self.slowest_index}) "
            f"peak_rss={self.peak_rss_mb:.0f}MB" + (" STOPPED EARLY" if self.stopped_early else "")
        )


def _context():
    return mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")


def compact_hex(hex_: str, full_up_to: int = 8192) -> str:
    """The hex itself, or for long inputs the hex with runs of one byte written as <ff*1234>."""
    if len(hex_) <= full_up_to:
        return hex_
    out, i = [], 0
    while i < len(hex_):
        j = i + 2
        while j < len(hex_) and hex_[j:j + 2] == hex_[i:i + 2]:
            j += 2
        out.append(f"<{hex_[i:i + 2]}*{(j - i) // 2}>" if j - i >= 32 else hex_[i:j])
        i = j
    return "".join(out) + "  (runs of one byte written as <byte*count>)"


def format_finding(f: dict, seed: int) -> str:
    hex_ = compact_hex(f["hex"])
    return (
        f"FINDING [{f['kind']}] {f['signature']}: {f['error']}\n"
        f"  input #{f['index']} ns={f['ns']} fragment={f['fragment']} length={len(f['hex']) // 2} "
        f"made by {f['how']} ({f['seconds']:.3f}s)\n"
        f"  replay: python tools/exi_fuzz.py --seed {seed} --replay {f['index']}\n"
        f"  hex: {hex_}\n" + "".join(f"  | {ln}\n" for ln in f["traceback"].rstrip().splitlines())
    )


def run(count: int, seed: int = 0, jobs: int = 2, timeout: float = 2.0, mem_limit_mb: int = 1024,
        keep_going: bool = False, progress: float | None = 5.0, docs_per_root: int = 2,
        check: CheckFn = check_input, vectors: Path = DEFAULT_VECTORS,
        out: Callable[[str], None] = print) -> Summary:
    """Fuzz `count` inputs in `jobs` worker processes; returns the summary (findings included)."""
    jobs = max(1, min(jobs, 2, count or 1))
    corpus = build_corpus(seed, docs_per_root, vectors)  # inherited by forked workers
    ctx = _context()
    findings_q = ctx.Queue()
    slots = [ctx.Array("d", SLOT_SIZE, lock=False) for _ in range(jobs)]
    summary = Summary(count)

    def start(j: int, first: int):
        p = ctx.Process(target=_worker, daemon=True, args=(
            slots[j], findings_q, corpus, seed, first, jobs, count, mem_limit_mb, keep_going, check))
        p.start()
        return p

    procs = [start(j, j) for j in range(jobs)]
    t_start = time.monotonic()
    next_report = t_start + progress if progress else float("inf")

    def record(f: dict) -> None:
        sig = f["signature"]
        summary.signatures[sig] = summary.signatures.get(sig, 0) + 1
        if summary.signatures[sig] == 1:  # print each distinct finding once, in full
            summary.findings.append(f)
            out(format_finding(f, seed))

    def drain() -> None:
        while True:
            try:
                f = findings_q.get(timeout=0.01)
            except Exception:  # queue.Empty
                return
            record(f)

    def restart(j: int, first: int) -> None:
        if first < count:
            procs[j] = start(j, first)
        else:
            slots[j][FINISHED] = 1.0

    def lost(j: int, kind: str, signature: str, error: str, seconds: float) -> None:
        """Worker j stopped on its current input (hang or death): record it, restart after it if asked."""
        s = slots[j]
        i = int(s[CUR])
        ns, frag, data, how = make_input(corpus, seed, i)
        record({"kind": kind, "index": i, "ns": ns, "fragment": frag, "hex": data.hex(), "how": how,
                "signature": signature, "seconds": seconds, "error": error, "traceback": ""})
        s[T0] = 0.0
        s[DONE] += 1
        if seconds > s[SLOW]:
            s[SLOW], s[SLOW_I] = seconds, i
        if keep_going:
            restart(j, i + jobs)

    def watchdog(j: int, now: float) -> None:
        s = slots[j]
        t0 = s[T0]  # read once: the worker clears it when the input is done
        if not t0 or now - t0 <= timeout:
            return
        procs[j].kill()
        procs[j].join()
        if s[T0] == t0:  # still the same input: it hangs
            lost(j, "hang", "hang", f"decoding took more than {timeout:g}s (worker killed)", now - t0)
        elif s[T0] == 0.0:  # it finished just before the kill and is counted: go on after it
            restart(j, int(s[CUR]) + jobs)
        else:  # killed while on a later input, not yet counted: do that one again
            s[T0] = 0.0
            restart(j, int(s[CUR]))

    try:
        while True:
            drain()
            if summary.signatures and not keep_going:
                break
            now = time.monotonic()
            for j, p in enumerate(procs):
                s = slots[j]
                if p.is_alive():
                    watchdog(j, now)
                elif p.exitcode != 0 and not s[FINISHED]:  # killed by a signal, the OOM killer, ...
                    drain()
                    lost(j, "crash", f"crash(exit {p.exitcode})", f"worker died with exit code {p.exitcode}", 0.0)
            if not any(p.is_alive() for p in procs):
                drain()
                break
            if time.monotonic() >= next_report:
                next_report += progress or 0
                _collect(summary, slots, t_start)
                out(f"[{summary.seconds:7.1f}s] {summary.done:,}/{count:,} inputs  {summary.rate:,.0f}/s  "
                    f"ok={summary.outcomes['roundtrip_ok'] + summary.outcomes['reencode_rejected']:,}  "
                    f"exi_err={summary.outcomes['decode_error']:,}  findings={sum(summary.signatures.values())}  "
                    f"slowest={summary.slowest * 1000:.1f}ms  rss={summary.peak_rss_mb:.0f}MB")
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join()
        findings_q.close()
        findings_q.cancel_join_thread()
    _collect(summary, slots, t_start)
    summary.stopped_early = not all(s[FINISHED] for s in slots)
    return summary


def _collect(summary: Summary, slots, t_start: float) -> None:
    summary.seconds = time.monotonic() - t_start
    summary.done = int(sum(s[DONE] for s in slots))
    for k, name in enumerate(OUTCOMES):
        summary.outcomes[name] = int(sum(s[N_RT + k] for s in slots))
    slow = max(slots, key=lambda s: s[SLOW])
    summary.slowest, summary.slowest_index = slow[SLOW], int(slow[SLOW_I])
    summary.peak_rss_mb = max(s[RSS] for s in slots)


def replay(seed: int, index: int, docs_per_root: int = 2, vectors: Path = DEFAULT_VECTORS) -> int:
    corpus = build_corpus(seed, docs_per_root, vectors)
    ns, frag, data, how = make_input(corpus, seed, index)
    print(f"input #{index} ns={ns} fragment={frag} length={len(data)} made by {how}\nhex: {data.hex()}")
    t = time.perf_counter()
    try:
        outcome = check_input(ns, frag, data)
    except BaseException:
        traceback.print_exc()
        return 1
    print(f"outcome: {outcome} ({(time.perf_counter() - t) * 1000:.1f}ms)")
    return 0


def iter_inputs(seed: int, count: int, docs_per_root: int = 2) -> Iterator[tuple[str, bool, bytes, str]]:
    """The first `count` inputs of run `seed` (for inspection / other harnesses)."""
    corpus = build_corpus(seed, docs_per_root)
    for i in range(count):
        yield make_input(corpus, seed, i)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100_000, help="number of inputs")
    ap.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(3), "big"))
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (at most 2)")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds one input may take (watchdog)")
    ap.add_argument("--mem-limit", type=int, default=1024, help="MB of address space a worker may add")
    ap.add_argument("--keep-going", action="store_true", help="record findings and continue")
    ap.add_argument("--progress", type=float, default=5.0, help="seconds between progress lines")
    ap.add_argument("--docs-per-root", type=int, default=2, help="random documents per root in the corpus")
    ap.add_argument("--vectors", type=Path, default=DEFAULT_VECTORS)
    ap.add_argument("--replay", type=int, metavar="INDEX", help="regenerate and check one input")
    args = ap.parse_args(argv)
    if args.replay is not None:
        return replay(args.seed, args.replay, args.docs_per_root, args.vectors)
    if not args.vectors.is_file():
        print(f"warning: no reference vectors at {args.vectors}; random documents only", file=sys.stderr)
    print(f"exi_fuzz: seed={args.seed} count={args.count:,} jobs={min(args.jobs, 2)} "
          f"timeout={args.timeout:g}s mem_limit=+{args.mem_limit}MB", flush=True)
    summary = run(args.count, args.seed, args.jobs, args.timeout, args.mem_limit, args.keep_going,
                  args.progress, args.docs_per_root, vectors=args.vectors,
                  out=lambda s: print(s, flush=True))
    for sig, n in sorted(summary.signatures.items(), key=lambda kv: -kv[1]):
        first = next(f for f in summary.findings if f["signature"] == sig)
        print(f"findings: {n:>6} x {sig} (first: input #{first['index']})")
    print(summary.line(), flush=True)
    return 1 if summary.signatures else 0


if __name__ == "__main__":
    raise SystemExit(main())
