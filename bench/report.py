#!/usr/bin/env python3
"""Helpers for bench/compare.

  report.py mem PRIMARY_PID [ALL_PIDS_COMMA]   memory of one process (and of a group) as JSON
  report.py report WORKDIR --header FILE [--analysis FILE]
                                              the Markdown report from WORKDIR/results.jsonl + meta.json
"""
import json
import os
import sys


def kb(pid, fname, key):
    try:
        with open(f"/proc/{pid}/{fname}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rss_by_kind(pid):
    """Resident memory of one process by what is mapped: its program file, the Swift runtime and
    Foundation (with ICU), the C++ runtime, Dovecot's libraries, other shared libraries, and anonymous
    memory (heap, thread stacks, written data pages)."""
    kinds = {}
    try:
        exe = os.path.realpath(f"/proc/{pid}/exe")
        name = None
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):
                    parts = line.split()
                    name = parts[5] if len(parts) > 5 else ""
                elif line.startswith("Rss:"):
                    kbv = int(line.split()[1])
                    if name == exe:
                        k = "program file"
                    elif "/swift/" in name or "libswift" in name or "Foundation" in name or "libdispatch" in name \
                            or "libBlocksRuntime" in name:
                        k = "Swift runtime, Foundation, ICU"
                    elif "libstdc++" in name:
                        k = "C++ runtime"
                    elif "/dovecot/" in name:
                        k = "Dovecot libraries"
                    elif name.startswith("/"):
                        k = "other shared libraries"
                    else:
                        k = "anonymous (heap, stacks, data)"
                    kinds[k] = kinds.get(k, 0) + kbv
    except OSError:
        pass
    return kinds


def cmd_mem(args):
    primary = args[0]
    group = [p for p in (args[1].split(",") if len(args) > 1 else [primary]) if p]
    out = {
        "rss_kb": kb(primary, "status", "VmRSS"),
        "hwm_kb": kb(primary, "status", "VmHWM"),
        "pss_kb": kb(primary, "smaps_rollup", "Pss"),
        "total_rss_kb": sum(kb(p, "status", "VmRSS") for p in group),
        "total_hwm_kb": sum(kb(p, "status", "VmHWM") for p in group),
        "total_pss_kb": sum(kb(p, "smaps_rollup", "Pss") for p in group),
        "processes": len(group),
        "rss_by_kind": rss_by_kind(primary),
    }
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------------


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def ratio(a, b):
    a, b = num(a), num(b)
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def f0(v):
    v = num(v)
    return "–" if v is None else f"{v:,.0f}"


def f1(v):
    v = num(v)
    return "–" if v is None else f"{v:,.1f}"


def mib(kbv):
    v = num(kbv)
    return "–" if v is None else f"{v / 1024:,.1f} MiB"


def lat(us):
    """Latency in µs, shown in the unit that reads best."""
    v = num(us)
    if v is None:
        return "–"
    if v >= 10000:
        return f"{v / 1000:,.0f} ms"
    if v >= 1000:
        return f"{v / 1000:,.1f} ms"
    return f"{v:,.0f} µs"


def per_pid(entries, pid):
    for e in entries or []:
        p, rss, pss = e.split(":")
        if p == str(pid):
            return int(rss), int(pss)
    return None, None


def sums(entries):
    rss = pss = 0
    for e in entries or []:
        _, r, p = e.split(":")
        rss += int(r)
        pss += int(p)
    return rss, pss


def cmd_report(args):
    work = args[0]
    header = analysis = None
    i = 1
    while i < len(args):
        if args[i] == "--header":
            header = args[i + 1]
            i += 2
        elif args[i] == "--analysis":
            analysis = args[i + 1]
            i += 2
        else:
            raise SystemExit(f"report.py: unknown argument {args[i]}")
    meta = json.load(open(os.path.join(work, "meta.json")))
    rows = [json.loads(l) for l in open(os.path.join(work, "results.jsonl")) if l.strip()]
    R = {}
    order = []
    for r in rows:
        key = (r.get("case"), r.get("mode"))
        if r.get("case") not in order:
            order.append(r.get("case"))
        R.setdefault(r.get("case"), {})[r.get("server")] = r

    out = []
    w = out.append
    if header and os.path.exists(header):
        w(open(header).read().rstrip() + "\n")

    w("## The run\n")
    w("| | |\n|---|---|")
    secs, bsecs = int(meta["seconds"]), int(meta.get("build_seconds", 0))
    w(f"| date | {meta['start']}; the run took {secs // 60} min {secs % 60} s, of which building {bsecs // 60} min {bsecs % 60} s |")
    w(f"| machine | {meta['nproc']} × {meta['cpu']}, {meta['mem']} |")
    w(f"| load average (1/5/15 min) | {meta['load_start']} at the start, {meta['load_end']} at the end; per case below |")
    w(f"| other busy processes (top, 1 s) | at the start: {meta.get('busy_start') or 'none ≥ 5 %'}; at the end: {meta.get('busy_end') or 'none ≥ 5 %'} |")
    w(f"| kernel | {meta['kernel']} |")
    w(f"| Swift | {meta['swift']} |")
    w(f"| Dovecot | {meta['dovecot']} |")
    w(f"| saslgate | commit {meta['commit']} |")
    w(f"| script | `bench/compare {meta['args']}`: {meta['duration']} s measured per case after {meta['warmup']} s warm-up; "
      f"{int(meta['users']):,} users per scheme; bcrypt cost {meta['bcrypt_cost']}; saslgated log_level {meta['sg_log_level']} |")
    w("")

    # --- throughput
    w("## Throughput and latency\n")
    w("Closed loop: each connection keeps K good-password requests in flight; 10 % of all requests carry a wrong "
      "password and are sent alongside (they hold no slot: Dovecot 2.3 releases failures from a 0.5 s timer even with "
      "`auth_failure_delay = 0`, which would otherwise stall the loop). Latency = AUTH written → OK read, good passwords; "
      "the FAIL column is the same for wrong ones. *CPU/auth* = the server's CPU time (all its processes) ÷ answers. "
      "*Ratio* = saslgated ÷ Dovecot (higher is better for auths/s, lower for latency and CPU).\n")
    w("| case | conns × K | saslgated auths/s | Dovecot auths/s | **ratio** | saslgated p50 / p99 | Dovecot p50 / p99 | p99 ratio | FAIL p50 sg / dc | CPU/auth sg / dc | bench CPU sg / dc | errors sg / dc | load avg |")
    w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for case in order:
        d = R[case]
        sg, dc = d.get("sg"), d.get("dc")
        probe = sg or dc
        if not probe or probe.get("mode") not in ("load", "oneshot"):
            continue
        name = {"plain": "PLAIN {PLAIN}", "sha512": "PLAIN {SHA512-CRYPT}", "blf": "PLAIN {BLF-CRYPT}",
                "login": "LOGIN {PLAIN}", "postfix": "PLAIN {PLAIN}, as Postfix: no `no-penalty`, new rip per request",
                "oneshot": "PLAIN {PLAIN}, new connection per request (Exim), good passwords only",
                "quiet": "PLAIN {PLAIN}, saslgated restarted with `log_level = warning` (no per-request log line)",
                "big": "PLAIN, 1M-user table",
                "cacheoff": "PLAIN {SHA512-CRYPT}, 1,000 active users, **no** auth cache",
                "cacheon": "PLAIN {SHA512-CRYPT}, 1,000 active users, auth cache **on** (both servers)"}
        kind = case.split("-")[0]
        label = name.get(kind, case)
        ck = f"{probe['connections']} × {probe['pipeline']}" if kind != "oneshot" else f"{probe['connections']} threads"
        sg = sg or {}
        dc = dc or {}
        w(f"| {label} | {ck} | {f0(sg.get('auths_per_s'))} | {f0(dc.get('auths_per_s'))} | **{ratio(sg.get('auths_per_s'), dc.get('auths_per_s'))}** "
          f"| {lat(sg.get('lat_p50_us'))} / {lat(sg.get('lat_p99_us'))} | {lat(dc.get('lat_p50_us'))} / {lat(dc.get('lat_p99_us'))} "
          f"| {ratio(sg.get('lat_p99_us'), dc.get('lat_p99_us'))} "
          f"| {lat(sg.get('fail_lat_p50_us')) if num(sg.get('fail_bad')) else '–'} / {lat(dc.get('fail_lat_p50_us')) if num(dc.get('fail_bad')) else '–'} "
          f"| {f1(sg.get('server_cpu_us_per_auth'))} / {f1(dc.get('server_cpu_us_per_auth'))} µs "
          f"| {f0(sg.get('bench_cpu_pct'))} / {f0(dc.get('bench_cpu_pct'))} % "
          f"| {sg.get('errors', '–')} / {dc.get('errors', '–')} | {sg.get('loadavg', '')} |")
    w("")

    # --- fairness
    fair = []
    for case in order:
        d = R[case]
        sg, dc = d.get("sg", {}), d.get("dc", {})
        if (sg or dc).get("mode") == "load" and int((sg or dc).get("connections", 1)) >= 8 and "per_conn_min" in (sg or dc):
            fair.append((case, sg, dc))
    if fair:
        w("Fairness: answers per connection inside the window, min / median / max over the connections (a server "
          "that keeps serving a few connections and starves the others shows a low minimum; its latency "
          "percentiles then look better than its service is, because the starved requests were mostly sent before "
          "the window).\n")
        w("| case | conns × K | saslgated min / median / max | Dovecot min / median / max |")
        w("|---|---|--:|--:|")
        for case, sg, dc in fair:
            w(f"| {case} | {(sg or dc)['connections']} × {(sg or dc)['pipeline']} "
              f"| {sg.get('per_conn_min', '–')} / {sg.get('per_conn_median', '–')} / {sg.get('per_conn_max', '–')} "
              f"| {dc.get('per_conn_min', '–')} / {dc.get('per_conn_median', '–')} / {dc.get('per_conn_max', '–')} |")
        w("")

    # --- memory and startup
    w("## Startup and memory\n")
    w("Startup = exec → the socket accepts → the first `OK` (for the last user of the table; Dovecot's master binds the "
      "socket and starts its auth process on the first connection). Dovecot runs several processes: the ratio is "
      "against its **auth process** (the one that holds the client connections and the user table); the last column "
      "is the sum over all its processes (RSS; PSS in brackets, which counts shared pages once).\n")
    w("| | saslgated | Dovecot auth process | **ratio** | Dovecot, all processes |")
    w("|---|--:|--:|--:|--:|")

    def startup_rows(case, title):
        d = R.get(case, {})
        sg, dc = d.get("sg", {}), d.get("dc", {})
        w(f"| {title}: exec → socket accepts | {f1(sg.get('socket_ready_ms'))} ms | {f1(dc.get('socket_ready_ms'))} ms (master) | {ratio(sg.get('socket_ready_ms'), dc.get('socket_ready_ms'))} | |")
        w(f"| {title}: exec → first OK | {f1(sg.get('first_ok_ms'))} ms | {f1(dc.get('first_ok_ms'))} ms | **{ratio(sg.get('first_ok_ms'), dc.get('first_ok_ms'))}** | |")

    def mem_row(case, title, field="rss_kb", total="total_rss_kb", tpss="total_pss_kb"):
        d = R.get(case, {})
        sg, dc = d.get("sg", {}), d.get("dc", {})
        if not sg and not dc:
            return
        w(f"| {title} | {mib(sg.get(field))} | {mib(dc.get(field))} | **{ratio(sg.get(field), dc.get(field))}** | {mib(dc.get(total))} ({mib(dc.get(tpss))}) |")

    startup_rows("startup", f"{int(meta['users']) * 3:,}-user table")
    mem_row("fresh", "RSS after start and one request")
    for case in order:
        if not case or not case.startswith("idle-"):
            continue
        d = R[case]
        sg, dc = d.get("sg", {}), d.get("dc", {})
        n = int(case.split("-")[1])
        sg_after = per_pid(sg.get("per_pid_after"), sg.get("auth_pid"))[0]
        dc_after = per_pid(dc.get("per_pid_after"), dc.get("auth_pid"))[0]
        dc_tot_rss, dc_tot_pss = sums(dc.get("per_pid_after"))
        # Growth over the fresh process (the earlier, smaller idle run's memory is usually kept by malloc).
        fresh = R.get("fresh", {})
        sg_bpc = dc_bpc = None
        if sg_after is not None and num(fresh.get("sg", {}).get("rss_kb")) and num(sg.get("connected")):
            sg_bpc = (sg_after - fresh["sg"]["rss_kb"]) * 1024 / float(sg["connected"])
        if dc_after is not None and num(fresh.get("dc", {}).get("rss_kb")) and num(dc.get("connected")):
            dc_bpc = (dc_after - fresh["dc"]["rss_kb"]) * 1024 / float(dc["connected"])
        w(f"| RSS with {n:,} idle connections | {mib(sg_after)} | {mib(dc_after)} | **{ratio(sg_after, dc_after)}** | {mib(dc_tot_rss)} ({mib(dc_tot_pss)}) |")
        w(f"| … growth over the fresh process, per connection | {f0(sg_bpc)} B | {f0(dc_bpc)} B | {ratio(sg_bpc, dc_bpc)} | |")
        if sg.get("verified") != "ok" or dc.get("verified") != "ok" or sg.get("errors") or dc.get("errors"):
            w(f"| … check (AUTH on first/last connection; errors) | {sg.get('verified')}; {sg.get('errors')} | {dc.get('verified')}; {dc.get('errors')} | | |")
    mem_row("after-load", "peak RSS (VmHWM) after all load cases", "hwm_kb", "total_hwm_kb", "total_pss_kb")
    w("")

    fresh = R.get("fresh", {})
    sgk, dck = fresh.get("sg", {}).get("rss_by_kind"), fresh.get("dc", {}).get("rss_by_kind")
    if sgk or dck:
        sgk, dck = sgk or {}, dck or {}
        w("Where the RSS after start and one request goes (`/proc/PID/smaps`, resident kB by mapping; file-backed "
          "pages are shared with every other process that maps the same file, and the kernel maps up to 16 pages "
          "around each page a process touches in a file):\n")
        w("| mapping | saslgated | Dovecot auth process |")
        w("|---|--:|--:|")
        for k in ["program file", "Swift runtime, Foundation, ICU", "C++ runtime", "Dovecot libraries",
                  "other shared libraries", "anonymous (heap, stacks, data)"]:
            if k in sgk or k in dck:
                w(f"| {k} | {mib(sgk.get(k))} | {mib(dck.get(k))} |")
        w("")

    if "big-startup" in R:
        nb = int(meta["big"])
        w(f"## A passwd-file with {nb:,} users\n")
        w("`{SHA512-CRYPT}` entries (1,000 distinct hashes reused), one file for both servers. Load time = exec → first OK "
          "for the last user of the file. Lookup latency: one connection, one request at a time, 2,000 random users "
          "(so it includes one SHA-512-crypt verification, ~1 ms; compare with the 1 × 1 {SHA512-CRYPT} row above "
          "for the 30k-user table).\n")
        w("| | saslgated | Dovecot | **ratio** |")
        w("|---|--:|--:|--:|")
        d = R["big-startup"]
        sg, dc = d.get("sg", {}), d.get("dc", {})
        w(f"| exec → socket accepts | {f1(sg.get('socket_ready_ms'))} ms | {f1(dc.get('socket_ready_ms'))} ms (master) | {ratio(sg.get('socket_ready_ms'), dc.get('socket_ready_ms'))} |")
        w(f"| exec → first OK (table loaded) | {f1(sg.get('first_ok_ms'))} ms | {f1(dc.get('first_ok_ms'))} ms | **{ratio(sg.get('first_ok_ms'), dc.get('first_ok_ms'))}** |")
        d = R.get("big-loaded", {})
        sg, dc = d.get("sg", {}), d.get("dc", {})
        w(f"| RSS with the table loaded (auth process) | {mib(sg.get('rss_kb'))} | {mib(dc.get('rss_kb'))} | **{ratio(sg.get('rss_kb'), dc.get('rss_kb'))}** |")
        w(f"| … all processes (PSS) | {mib(sg.get('total_pss_kb'))} | {mib(dc.get('total_pss_kb'))} | {ratio(sg.get('total_pss_kb'), dc.get('total_pss_kb'))} |")
        d = R.get("big-lookup", {})
        sg, dc = d.get("sg", {}), d.get("dc", {})
        w(f"| lookup latency p50 | {lat(sg.get('lat_p50_us'))} | {lat(dc.get('lat_p50_us'))} | {ratio(sg.get('lat_p50_us'), dc.get('lat_p50_us'))} |")
        w(f"| lookup latency p99 | {lat(sg.get('lat_p99_us'))} | {lat(dc.get('lat_p99_us'))} | {ratio(sg.get('lat_p99_us'), dc.get('lat_p99_us'))} |")
        w(f"| errors | {sg.get('errors', '–')} | {dc.get('errors', '–')} | |")
        w("")

    # --- targets
    w("## Targets\n")
    w("| target | measured | met? |")
    w("|---|---|---|")

    def tp(case):
        d = R.get(case, {})
        return d.get("sg", {}), d.get("dc", {})

    def verdict(ok):
        return "**yes**" if ok else "**no**"

    for case in ("plain-c64-k1", "plain-c64-k16"):
        sg, dc = tp(case)
        if sg and dc:
            r = num(sg.get("auths_per_s")) / max(num(dc.get("auths_per_s")) or 1, 1)
            p99ok = num(sg.get("lat_p99_us")) <= num(dc.get("lat_p99_us"))
            k = sg.get("pipeline")
            w(f"| ≥ 2× Dovecot's auths/s, PLAIN {{PLAIN}}, 64 connections × {k}, p99 no worse | {r:.2f}× auths/s; p99 {lat(sg.get('lat_p99_us'))} vs {lat(dc.get('lat_p99_us'))} | {verdict(r >= 2 and p99ok)}"
              f"{'' if r >= 2 else ' (throughput)'}{'' if p99ok else ' (p99)'} |")
    sg, dc = tp("sha512-c64-k16")
    if sg and dc:
        r = num(sg.get("auths_per_s")) / max(num(dc.get("auths_per_s")) or 1, 1)
        w(f"| ≥ 1.7× on {{SHA512-CRYPT}}, 64 × 16 | {r:.2f}× ({f0(sg.get('auths_per_s'))} vs {f0(dc.get('auths_per_s'))} auths/s; server CPU {f0(sg.get('server_cpu_pct'))} % vs {f0(dc.get('server_cpu_pct'))} %) | {verdict(r >= 1.7)} |")
    sg0, dc0 = tp("cacheoff-c64-k16")
    sg1, dc1 = tp("cacheon-c64-k16")
    if sg0 and sg1 and dc0 and dc1:
        g = num(sg1.get("auths_per_s")) / max(num(sg0.get("auths_per_s")) or 1, 1)
        h = num(dc1.get("auths_per_s")) / max(num(dc0.get("auths_per_s")) or 1, 1)
        r = num(sg1.get("auths_per_s")) / max(num(dc1.get("auths_per_s")) or 1, 1)
        w(f"| auth cache measured with and without ({{SHA512-CRYPT}}, 1,000 users, 64 × 16) | saslgated {f0(sg0.get('auths_per_s'))} → {f0(sg1.get('auths_per_s'))} auths/s ({g:.1f}×); "
          f"Dovecot {f0(dc0.get('auths_per_s'))} → {f0(dc1.get('auths_per_s'))} ({h:.1f}×); with the cache saslgated/Dovecot = {r:.2f}× | measured |")
    d = R.get("idle-10000")
    if d:
        sg, dc = d.get("sg", {}), d.get("dc", {})
        a = per_pid(sg.get("per_pid_after"), sg.get("auth_pid"))[0]
        b = per_pid(dc.get("per_pid_after"), dc.get("auth_pid"))[0]
        tot = sums(dc.get("per_pid_after"))[0]
        if a and b:
            w(f"| RSS with 10,000 idle connections ≤ ½ of Dovecot's | {mib(a)} vs {mib(b)} (auth process) = {a / b:.2f}×; vs all Dovecot processes {mib(tot)} = {a / max(tot, 1):.2f}× | {verdict(a <= b / 2)} (auth process), {verdict(a <= tot / 2)} (all processes) |")
    d = R.get("big-startup")
    if d:
        sg = d.get("sg", {})
        t = num(sg.get("first_ok_ms"))
        w(f"| {int(meta['big']):,}-user table loads in < 2 s | exec → first OK {f0(t)} ms | {verdict(t is not None and 0 <= t < 2000)} |")
    w("")

    # Round 2 (issue #15): what MTAs really send, and memory.
    w("Round 2 (Exim-shaped connections, one request in flight, memory):\n")
    w("| target | measured | met? |")
    w("|---|---|---|")
    sg, dc = tp("oneshot-c8")
    if sg and dc:
        r = num(sg.get("auths_per_s")) / max(num(dc.get("auths_per_s")) or 1, 1)
        p99ok = num(sg.get("lat_p99_us")) <= num(dc.get("lat_p99_us"))
        w(f"| Exim-shaped (a new connection per AUTH, 8 clients): ≥ 2× Dovecot's auths/s, p99 no worse | {r:.2f}× auths/s "
          f"({f1(sg.get('server_cpu_us_per_auth'))} vs {f1(dc.get('server_cpu_us_per_auth'))} µs CPU per AUTH); p99 {lat(sg.get('lat_p99_us'))} vs {lat(dc.get('lat_p99_us'))} | "
          f"{verdict(r >= 2 and p99ok)}{'' if r >= 2 else ' (throughput)'}{'' if p99ok else ' (p99)'} |")
    sg, dc = tp("plain-c64-k1")
    if sg and dc:
        r = num(sg.get("auths_per_s")) / max(num(dc.get("auths_per_s")) or 1, 1)
        w(f"| 64 connections × 1 in flight: ≥ 2× | {r:.2f}× ({f1(sg.get('server_cpu_us_per_auth'))} vs {f1(dc.get('server_cpu_us_per_auth'))} µs CPU per AUTH) | {verdict(r >= 2)} |")
    sg, dc = tp("plain-c1-k1")
    if sg and dc:
        a, b = num(sg.get("lat_p50_us")), num(dc.get("lat_p50_us"))
        if a and b:
            w(f"| 1 × 1: p50 ≤ 0.8× Dovecot's | {lat(a)} vs {lat(b)} = {a / b:.2f}× | {verdict(a <= 0.8 * b)} |")
    fresh = R.get("fresh", {})
    a = num(fresh.get("sg", {}).get("rss_kb"))
    tot = num(fresh.get("dc", {}).get("total_rss_kb"))
    if a and tot:
        w(f"| RSS after start and one request ≤ 0.6× the sum of all Dovecot processes | {mib(a)} vs {mib(tot)} = {a / tot:.2f}× | {verdict(a <= 0.6 * tot)} |")
    d = R.get("big-loaded", {})
    a, b = num(d.get("sg", {}).get("rss_kb")), num(d.get("dc", {}).get("rss_kb"))
    if a and b:
        w(f"| {int(meta.get('big') or 0):,}-user passwd-file: RSS ≤ 0.8× Dovecot's auth process | {mib(a)} vs {mib(b)} = {a / b:.2f}× | {verdict(a <= 0.8 * b)} |")
    d = R.get("big-startup", {})
    t = num(d.get("sg", {}).get("socket_ready_ms"))
    if t is not None and t >= 0:
        w(f"| the socket accepts within 100 ms of exec, whatever the table size | {f1(t)} ms with {int(meta.get('big') or 0):,} users | {verdict(t <= 100)} |")
    w("")

    # --- commands
    w("## Commands\n")
    w("Servers (`$TABLE` = the generated passwd-file; both read the same file):\n")
    w("```\n# saslgated -c saslgated.conf\n" + open(os.path.join(work, "saslgated.conf.shown")).read().rstrip() + "\n```\n")
    w("```\n# dovecot -F -c dovecot.conf\n" + open(os.path.join(work, "dovecot.conf.shown")).read().rstrip() + "\n```\n")
    for f, title in (("saslgated-cache.conf.shown", "saslgated, auth cache cases"), ("dovecot-cache.conf.shown", "Dovecot, auth cache cases")):
        path = os.path.join(work, f)
        if os.path.exists(path):
            extra = [l for l in open(path).read().splitlines() if "cache" in l]
            w(f"```\n# {title}: the configuration above plus\n" + "\n".join(extra) + "\n```\n")
    w("Load (the same lines for both servers; `$SOCK` is the server's socket, `--server-pid` and `--json` are added "
      "by the script; startup: `saslgate-bench --probe --since $EPOCHREALTIME_BEFORE_EXEC`):\n")
    seen = []
    for line in open(os.path.join(work, "commands.txt")):
        if line not in seen:
            seen.append(line)
    w("```\n" + "".join(seen).rstrip() + "\n```\n")

    # --- syscalls
    sys_cases = [c for c in order if c and c.startswith("syscalls-")]
    if sys_cases:
        w("## System calls per authentication (this run, `--profile`)\n")
        w("`strace -c -f -p PID` on saslgated and on Dovecot's auth process while saslgate-bench sends the same "
          "fixed number of requests (strace slows both servers down; only the counts are used). *Per AUTH* = "
          "calls ÷ answered requests.\n")
        for case in sys_cases:
            d = R[case]
            sg, dc = d.get("sg", {}), d.get("dc", {})
            w(f"### {sg.get('title') or dc.get('title') or case}\n")
            w("| system call | saslgated per AUTH | Dovecot per AUTH |")
            w("|---|--:|--:|")
            names = sorted(set(sg.get("calls", {})) | set(dc.get("calls", {})),
                           key=lambda n: -(sg.get("calls", {}).get(n, 0) + dc.get("calls", {}).get(n, 0)))
            def per(x, n):
                req = x.get("requests") or 0
                v = x.get("calls", {}).get(n)
                return f"{v / req:.2f}" if req and v else "–"
            for n in names:
                if (sg.get("calls", {}).get(n, 0) + dc.get("calls", {}).get(n, 0)) * 100 < (sg.get("requests") or 1):
                    continue
                w(f"| {n} | {per(sg, n)} | {per(dc, n)} |")
            tot = lambda x: f"{sum(x.get('calls', {}).values()) / x['requests']:.1f}" if x.get("requests") else "–"
            w(f"| **all** | **{tot(sg)}** | **{tot(dc)}** |")
            w("")

    # --- profile
    profs = [p for p in ("oneshot", "c64k1", "plain", "sha512") if os.path.exists(os.path.join(work, f"profile-{p}.txt"))]
    if profs:
        w("## Profile of saslgated (this run, `--profile`)\n")
        w("`perf record -e cpu-clock -F 1999 -g -p $(pidof saslgated)` while saslgate-bench runs the named case against it; stacks demangled with `swift demangle --simplified` and summarised by "
          "`bench/perf-summary.py` (each sample goes to the first bucket whose pattern matches a frame of its stack). "
          "The server's CPU% and µs/auth during the profile are in the first line.\n")
        names = {"plain": "PLAIN, {PLAIN} passwords, 64 × 16", "sha512": "PLAIN, {SHA512-CRYPT} passwords, 64 × 16",
                 "oneshot": "PLAIN, {PLAIN} passwords, a new connection per AUTH (Exim), 8 clients",
                 "c64k1": "PLAIN, {PLAIN} passwords, 64 × 1 (Postfix: one request in flight per smtpd)"}
        for p in profs:
            w(f"### {names[p]}\n")
            b = os.path.join(work, f"profile-{p}-bench.txt")
            if os.path.exists(b):
                w("```\n" + open(b).read().rstrip() + "\n```\n")
            w("```\n" + open(os.path.join(work, f"profile-{p}.txt")).read()[:9000].rstrip() + "\n```\n")
            k = os.path.join(work, f"profile-{p}-dso.txt")
            if os.path.exists(k):
                w("CPU by where the code lives (`perf report --sort dso`: the kernel is system calls, wake-ups and "
                  "scheduling):\n")
                w("```\n" + open(k).read()[:2000].rstrip() + "\n```\n")
            c = os.path.join(work, f"profile-{p}-self.txt")
            if os.path.exists(c):
                w("Top symbols by self time (`perf report --no-children --sort dso,symbol`):\n")
                w("```\n" + open(c).read()[:5000].rstrip() + "\n```\n")

    if analysis and os.path.exists(analysis):
        w(open(analysis).read().rstrip() + "\n")
    print("\n".join(out))


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "mem":
        cmd_mem(args)
    elif cmd == "report":
        cmd_report(args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
