"""EXI cost of charge-loop messages whose values change every loop (what a station and a car code four times a second).

For each charge-loop message among the reference vectors (DIN CurrentDemandReq/Res, -2 ChargingStatusReq/Res, -20
AC_ChargeLoopReq/Res), `--docs` copies with new physical values (and meter readings) are encoded and decoded, once
through the codec's public functions (`exi.encode`/`exi.decode`, with its memo of recent documents: these miss it,
but for -2 ChargingStatusReq, which has no value to change) and once as the coding alone. Times are CPU time per
message, the median of `--rounds`. With `--baseline SRC` the same runs alternate, in child processes, with another
checkout's code (`SRC` = its `src` folder), and the ratio is printed: compare ratios, not absolute times.

    .venv/bin/python bench/exi_loop_bench.py [--docs 300] [--rounds 5] [--baseline <checkout of main>/src]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers.vectors import load_reference_vectors  # noqa: E402

LOOP_MESSAGES = ("CurrentDemandReq", "CurrentDemandRes", "ChargingStatusReq", "ChargingStatusRes",
                 "AC_ChargeLoopReq", "AC_ChargeLoopRes")


def _name(doc: dict) -> str:
    root = next(iter(doc))
    return next(iter(doc[root]["Body"])) if root == "V2G_Message" else root


def _vary(x: object, rng: random.Random) -> object:
    if isinstance(x, dict):
        return {k: (rng.randint(-500, 1000) if k == "Value" and isinstance(v, int) and not isinstance(v, bool)
                    else rng.randint(0, 2**30) if k == "MeterReading" else _vary(v, rng)) for k, v in x.items()}
    if isinstance(x, list):
        return [_vary(i, rng) for i in x]
    return x


def measure(docs: int, rounds: int) -> dict[str, list[float]]:
    """This process's code: message -> [public encode, public decode, coding encode, coding decode] in us."""
    from v2gstack import exi
    from v2gstack.exi.codec import namespace

    rng = random.Random(1)
    picked: dict[tuple[str, str], dict] = {}
    for v in load_reference_vectors():
        if _name(v["json"]) in LOOP_MESSAGES:
            picked.setdefault((v["ns"], _name(v["json"])), v)
    out: dict[str, list[list[float]]] = {}
    work = []
    for (key, name), v in picked.items():
        ns = namespace(key)
        batch = [_vary(v["json"], rng) for _ in range(docs)]
        datas = [ns._encode(d, False) for d in batch]
        for data in datas[:5]:  # every function written and compiled before any timing
            ns._decode(data, False)
        work.append((f"{key}:{name}", key, ns, batch, datas))
    for _ in range(rounds):
        for label, key, ns, batch, datas in work:
            ns.encoded.entries.clear()
            ns.decoded.entries.clear()
            times = []
            for fn, items in ((lambda d, k=key: exi.encode(k, d), batch), (lambda b, k=key: exi.decode(k, b), datas),
                              (lambda d, ns=ns: ns._encode(d, False), batch),
                              (lambda b, ns=ns: ns._decode(b, False), datas)):
                t = time.process_time()
                for item in items:
                    fn(item)
                times.append((time.process_time() - t) / len(items) * 1e6)
            out.setdefault(label, []).append(times)
    return {label: [statistics.median(r[i] for r in runs) for i in range(4)] for label, runs in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=300, help="documents per message and round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", help="another checkout's src folder, measured alternately in child processes")
    ap.add_argument("--json", help=argparse.SUPPRESS)  # a child's answer
    args = ap.parse_args()
    if args.json:
        Path(args.json).write_text(json.dumps(measure(args.docs, args.rounds)))
        return 0
    if not load_reference_vectors():
        print("no reference vectors (../shared/vectors/exi-reference.jsonl)", file=sys.stderr)
        return 1
    runs: dict[str, list[dict[str, list[float]]]] = {"this checkout": []}
    if args.baseline:
        runs["baseline"] = []
    for _ in range(args.rounds):
        for label in runs:
            src = args.baseline if label == "baseline" else str(ROOT / "src")
            answer = Path(f"/tmp/exi-loop-{os.getpid()}.json")
            env = {**os.environ, "PYTHONPATH": src}
            subprocess.run([sys.executable, __file__, "--docs", str(args.docs), "--rounds", "1", "--json",
                            str(answer)], env=env, check=True)
            runs[label].append(json.loads(answer.read_text()))
            answer.unlink()
    print(f"{'message':32} {'code':14} {'encode':>8} {'decode':>8} {'coding enc':>11} {'coding dec':>11}  (us)")
    totals = {}
    for label, results in runs.items():
        total = 0.0
        for msg in results[0]:
            med = [statistics.median(r[msg][i] for r in results) for i in range(4)]
            total += med[0] + med[1]
            print(f"{msg:32} {label:14} {med[0]:8.1f} {med[1]:8.1f} {med[2]:11.1f} {med[3]:11.1f}")
        totals[label] = total
    for label, total in totals.items():
        print(f"{label}: encode + decode of the {len(runs[label][0])} messages, exi.encode/decode: {total:.1f} us")
    if args.baseline:
        print(f"baseline / this checkout: {totals['baseline'] / totals['this checkout']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
