"""Run the doctor on every planted-bug and healthy setup and print the table.

OMP_NUM_THREADS=1 python benchmarks/doctor/run.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES

from trainwell.diagnose import doctor


def _matches(check: str, expect: tuple[str, ...]) -> bool:
    return any(check == e or check.startswith(e + ".") for e in expect)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for case in CASES:
        if args.only and case.name not in args.only:
            continue
        model, kw = case.build()
        t0 = time.perf_counter()
        if (
            "config" in kw
        ):  # the bundled example config, through the CONFIG path of `trainwell doctor`
            from importlib.resources import files

            from trainwell.config import load_config
            from trainwell.diagnose.from_config import doctor_from_config

            report = doctor_from_config(
                load_config(str(files("trainwell") / "examples" / kw["config"]))
            )
        else:
            report = doctor(model, kw.pop("data"), **kw)
        secs = time.perf_counter() - t0
        named = [f.check for f in report.diagnosis()]
        fails = [f.check for f in report.by_status("fail")]
        if case.expect is None:
            ok = not fails
        else:
            ok = any(_matches(c, case.expect) for c in named)
        rows.append((case, named, report.status, ok, secs))
    w = max(len(c.name) for c, *_ in rows)
    print(
        f"{'setup':<{w}}  {'planted problem':<50} {'status':<6} "
        f"{'named by the doctor (worst status)':<50} right  secs"
    )
    for case, named, status, ok, secs in rows:
        shown = (
            ", ".join(named[:3]) + (f" +{len(named) - 3}" if len(named) > 3 else "") or "(nothing)"
        )
        print(
            f"{case.name:<{w}}  {case.planted:<50} {status:<6} {shown:<50} "
            f"{'yes' if ok else 'NO':<5} {secs:5.1f}"
        )
    planted = [r for r in rows if r[0].expect is not None]
    healthy = [r for r in rows if r[0].expect is None]
    right = sum(r[3] for r in planted)
    clean = sum(r[3] for r in healthy)
    print(
        f"\nplanted bugs diagnosed: {right}/{len(planted)}"
        f" ({right / max(len(planted), 1):.0%}); healthy setups without a failing check: "
        f"{clean}/{len(healthy)}"
    )
    return 0 if right >= 0.9 * len(planted) and clean == len(healthy) else 1


if __name__ == "__main__":
    raise SystemExit(main())
