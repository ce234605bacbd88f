#!/usr/bin/env python3
"""Summarises `perf script -F tid,ip,sym | swift demangle --simplified` output (call stacks).

  perf-summary.py STACKS [--top N] [--callees REGEX]... [--bucket NAME=REGEX]...

--top N          the N functions with the most inclusive samples (a function counts once per stack)
--callees REGEX  for the first frame matching REGEX (searching from the leaf up): its inclusive share and
                 the shares of the functions it calls directly
--bucket N=RE    (N must not contain "=") attribute each sample to the first bucket (in the order given) whose RE matches any
                 frame of its stack; prints the shares (what the time goes to)
"""
import collections
import re
import sys


SKIP = (r"^(start_thread|clone3|__clone|entry_SYSCALL|do_syscall_64)|ThreadOpsPosix\.run|setupThreadAndEventLoop|"
        r"runTheLoop|SelectableEventLoop\.run\(|withAutoReleasePool|@guaranteed NIOThread|_dispatch_worker_thread|"
        r"swift::runJobInEstablishedExecutorContext|swift_job_run")


def stacks(path):
    cur = []
    for line in open(path, errors="replace"):
        if not line.strip():
            if cur:
                yield cur
            cur = []
            continue
        if line[0] in " \t":
            parts = line.strip().split(" ", 1)
            cur.append(parts[1] if len(parts) > 1 else "?")
        # header lines (tid) are skipped
    if cur:
        yield cur


def short(name, n=150):
    name = re.sub(r"\s+", " ", name)
    return name if len(name) <= n else name[: n - 1] + "…"


def main():
    a = sys.argv[1:]
    if not a:
        raise SystemExit(__doc__)
    path = a[0]
    top = 30
    callees = []
    buckets = []
    i = 1
    while i < len(a):
        if a[i] == "--top":
            top = int(a[i + 1])
        elif a[i] == "--callees":
            callees.append(a[i + 1])
        elif a[i] == "--bucket":
            n, r = a[i + 1].split("=", 1)
            buckets.append((n, re.compile(r)))
        else:
            raise SystemExit(f"unknown argument {a[i]}")
        i += 2
    all_stacks = list(stacks(path))
    total = len(all_stacks)
    print(f"{total} samples")
    if buckets:
        counts = collections.Counter()
        for st in all_stacks:
            for n, r in buckets:
                if any(r.search(f) for f in st):
                    counts[n] += 1
                    break
            else:
                counts["(other)"] += 1
        print("\nwhere the time goes (each sample in the first matching bucket):")
        for n, _ in buckets + [("(other)", None)]:
            print(f"  {100.0 * counts[n] / total:5.1f}%  {n}")
    if top:
        inc = collections.Counter()
        for st in all_stacks:
            for f in set(st):
                inc[f] += 1
        print(f"\ntop {top} functions by inclusive samples:")
        shown = 0
        for f, c in inc.most_common():
            # Frames without a symbol and the threads' common entry frames say nothing.
            if f.startswith(("?", "[unknown]")) or re.search(SKIP, f):
                continue
            print(f"  {100.0 * c / total:5.1f}%  {short(f)}")
            shown += 1
            if shown >= top:
                break
    for rx in callees:
        r = re.compile(rx)
        incl = 0
        kids = collections.Counter()
        for st in all_stacks:
            # st[0] is the leaf; the caller of st[j] is st[j+1].
            for j in range(len(st) - 1, -1, -1):  # outermost match first
                if r.search(st[j]):
                    incl += 1
                    kids[st[j - 1] if j > 0 else "(self)"] += 1
                    break
        print(f"\n{rx}: {100.0 * incl / max(total, 1):.1f}% inclusive; direct callees:")
        for f, c in kids.most_common(15):
            print(f"  {100.0 * c / total:5.1f}%  {short(f)}")


if __name__ == "__main__":
    main()
