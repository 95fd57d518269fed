#!/usr/bin/env python3
"""Instructions per job from two callgrind profiles of the same workload.

    callgrind_per_job.py SMALL.out JOBS_SMALL LARGE.out JOBS_LARGE [TOP]

Each profile is a whole worker process (start-up, the jobs, shut-down);
the difference between the two, divided by the difference in jobs, is
what one more job costs, with the fixed costs gone. Prints that per job:
the total, the exclusive (self) cost summed by the crate or library whose
source the instructions come from (inlined code counts where it was
written, so serde inlined into athyper's codec counts as serde), the top
functions by self cost, and the inclusive cost of athyper's own functions
(recursive functions, such as redis-rs's parser, have no meaningful
inclusive figure, so only self costs are summed).
"""

import re
import subprocess
import sys
from collections import defaultdict

LINE = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+(.*?)(?: \[[^\]]*\])?$")


def annotate(path, inclusive):
    """`file:function` -> Ir, from callgrind_annotate."""
    out = subprocess.run(
        [
            "callgrind_annotate",
            f"--inclusive={'yes' if inclusive else 'no'}",
            "--threshold=100",
            "--auto=no",
            path,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    costs = {}
    total = None
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        name = m.group(2).strip()
        if name == "PROGRAM TOTALS":
            total = ir
            continue
        costs[name] = costs.get(name, 0) + ir
    return total, costs


def origin(key):
    """The crate or library a `file:function` key's file belongs to."""
    file = key.split(":", 1)[0]
    m = re.search(r"index\.crates\.io-[^/]+/([^/]+)-\d+\.\d+\.\d+[^/]*/", file)
    if m:
        return m.group(1)
    m = re.search(r"/library/([^/]+)/", file)
    if m and "/rustc/" in file:
        return "rust " + m.group(1)
    m = re.search(r"/athyper/src/(.*)\.rs$", file)
    if m:
        return "athyper " + m.group(1).replace("/mod", "")
    if "examples/" in file:
        return "the bench"
    if "malloc" in file:
        return "libc malloc/free"
    if file.startswith("./") or "glibc" in file or "/sysdeps/" in file:
        return "libc other"
    return file or "?"


def per_job(small, large, span):
    keys = set(small) | set(large)
    return {k: (large.get(k, 0) - small.get(k, 0)) / span for k in keys}


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    small_path, n_small, large_path, n_large = sys.argv[1:5]
    top = int(sys.argv[5]) if len(sys.argv) > 5 else 25
    span = int(n_large) - int(n_small)
    if span <= 0:
        sys.exit("the second profile must have more jobs than the first")

    total_s, self_s = annotate(small_path, False)
    total_l, self_l = annotate(large_path, False)
    _, incl_s = annotate(small_path, True)
    _, incl_l = annotate(large_path, True)
    total = (total_l - total_s) / span
    selfs = per_job(self_s, self_l, span)
    incls = per_job(incl_s, incl_l, span)

    print(f"instructions per job: {total:,.0f} "
          f"(({total_l:,} - {total_s:,}) / ({n_large} - {n_small}) jobs)")
    print()
    print("self cost per job by origin:")
    groups = defaultdict(float)
    for k, v in selfs.items():
        groups[origin(k)] += v
    for name, v in sorted(groups.items(), key=lambda kv: -kv[1]):
        if v >= total * 0.005:
            print(f"  {v:10,.0f}  {100 * v / total:5.1f}%  {name}")
    print()
    print(f"top {top} functions by self cost per job:")
    for k, v in sorted(selfs.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {v:10,.0f}  {100 * v / total:5.1f}%  {k}")
    print()
    print(f"top {top} athyper functions by inclusive cost per job:")
    ours = {k: v for k, v in incls.items() if "/athyper/src/" in k.split(":", 1)[0]}
    for k, v in sorted(ours.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {v:10,.0f}  {100 * v / total:5.1f}%  {k}")


if __name__ == "__main__":
    main()
