"""EXI encode/decode speed per reference message: v2gstack against the reference Python stack, in one run.

The reference is the codec of `iso15118` 0.31.2 (EXIficient in a JVM, called over py4j as that stack calls it),
served from .venv-ref (`make ref-venv`). Both are timed on the same machine in the same run; compare the ratios.

    .venv/bin/python bench/exi_bench.py [--n 200] [--ref-n 100] [--no-ref] [--profile] [--memo]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers.refcodec import RefCodec  # noqa: E402
from helpers.vectors import load_reference_vectors  # noqa: E402

from v2gstack import exi  # noqa: E402
from v2gstack.exi.codec import namespace  # noqa: E402


def per_call_us(fn, n: int, rounds: int = 7) -> float:
    """Median over `rounds` batches of the mean time per call in a batch of n calls (microseconds)."""
    fn()
    batches = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        batches.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(batches)


def label(doc: dict) -> str:
    root = next(iter(doc))
    if root == "V2G_Message":
        return next(iter(doc[root]["Body"]))
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="calls per timing batch for v2gstack")
    ap.add_argument("--ref-n", type=int, default=100, help="timed calls per message for the reference codec")
    ap.add_argument("--no-ref", action="store_true", help="time v2gstack only")
    ap.add_argument("--profile", action="store_true", help="also print where v2gstack's time goes (cProfile)")
    ap.add_argument("--memo", action="store_true",
                    help="time v2gstack through its memo of recent documents (every call after the first a hit); "
                         "by default each call codes the document")
    args = ap.parse_args()
    vectors = load_reference_vectors()
    if not vectors:
        print("no reference vectors (../shared/vectors/exi-reference.jsonl)", file=sys.stderr)
        return 1
    ref = None
    if not args.no_ref:
        if RefCodec.available():
            ref = RefCodec()
        else:
            print("reference codec unavailable (make ref-venv; needs Java): timing v2gstack only\n")
    rows = []
    try:
        for v in vectors:
            ns, frag, doc, data = v["ns"], v["fragment"], v["json"], bytes.fromhex(v["exi"])
            if args.memo:
                enc = per_call_us(lambda ns=ns, doc=doc, frag=frag: exi.encode(ns, doc, fragment=frag), args.n)
                dec = per_call_us(lambda ns=ns, data=data, frag=frag: exi.decode(ns, data, fragment=frag), args.n)
            else:  # the coding itself, as for a charge loop's message whose values changed (a memo miss)
                codec = namespace(ns)
                enc = per_call_us(lambda codec=codec, doc=doc, frag=frag: codec._encode(doc, frag), args.n)
                dec = per_call_us(lambda codec=codec, data=data, frag=frag: codec._decode(data, frag), args.n)
            ref_enc = ref_dec = float("nan")
            if ref is not None:
                ref_enc, ref_dec = ref.time(ns, doc, data, fragment=frag, n=args.ref_n)
            rows.append((f"{ns}:{label(doc)}", len(data), enc, dec, ref_enc, ref_dec))
    finally:
        if ref is not None:
            ref.close()
    head = f"{'message':44} {'bytes':>6} {'enc us':>8} {'dec us':>8} {'ref enc':>9} {'ref dec':>9} {'ratio':>7}"
    print(head)
    print("-" * len(head))
    for name, size, enc, dec, renc, rdec in rows:
        ratio = (renc + rdec) / (enc + dec)
        print(f"{name:44} {size:6d} {enc:8.1f} {dec:8.1f} {renc:9.1f} {rdec:9.1f} {ratio:7.0f}")
    total = [r[2] + r[3] for r in rows]
    print("-" * len(head))
    print(f"messages: {len(rows)}")
    print(f"v2gstack median encode {statistics.median(r[2] for r in rows):.1f} us, "
          f"decode {statistics.median(r[3] for r in rows):.1f} us, encode+decode {statistics.median(total):.1f} us "
          f"(max {max(total):.1f} us)")
    if ref is not None:
        ref_total = [r[4] + r[5] for r in rows]
        ratios = [rt / t for rt, t in zip(ref_total, total, strict=True)]
        print(f"reference median encode {statistics.median(r[4] for r in rows):.0f} us, "
              f"decode {statistics.median(r[5] for r in rows):.0f} us, "
              f"encode+decode {statistics.median(ref_total):.0f} us")
        print(f"speed-up (reference time / v2gstack time, encode+decode): median {statistics.median(ratios):.0f}x, "
              f"min {min(ratios):.0f}x, max {max(ratios):.0f}x")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(50):
            for v in vectors:
                namespace(v["ns"])._decode(bytes.fromhex(v["exi"]), v["fragment"])
                namespace(v["ns"])._encode(v["json"], v["fragment"])
        prof.disable()
        print("\nwhere v2gstack's time goes (cProfile, 50 passes over all vectors, by own time):")
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
