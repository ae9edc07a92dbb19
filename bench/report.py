#!/usr/bin/env python3
"""Turns build/bench/raw.tsv (and vm.tsv) into results.md, the gnuplot script
and data for results.png and idle.png, and bench/README-section.md.

usage: report.py OUT_DIR README_SECTION_PATH
       report.py --undecided OUT_DIR PASS SCENARIO MAX_ROUNDS

raw.tsv: one line per timed run: pass, scenario, contender, round, then the
key=value pairs rddbench printed (plus the relay's CPU figures and the
memory figures). Every figure in the tables is the median over the rounds,
with its spread: "±" is the largest distance from the median among the
rounds (up to 4 rounds all of them; from 5 rounds on, all but the one
furthest away), as a percentage of the median.

--undecided prints, for the goals of PASS that involve SCENARIO and whose
two figures are within each other's spread, the runs to add: lines of
"SCENARIO CONTENDER FIRST_ROUND LAST_ROUND" (bench/run.sh runs them,
interleaved, then asks again), none once every such goal is decided or
MAX_ROUNDS is reached.
"""
import statistics
import sys
import textwrap
from collections import defaultdict, namedtuple

NAMES = {
    "direct": "direct (no proxy)",
    "floor": "floor (reference relay)",
    "rdd-splice": "rdd-guest --splice",
    "rdd-nosplice": "rdd-guest --no-splice",
    "rdd-old-splice": "rdd-guest --splice, old build",
    "rdd-old-nosplice": "rdd-guest --no-splice, old build",
    "socat": "socat",
    "proxyd": "systemd-socket-proxyd",
}
COLORS = {
    "direct": "#7f7f7f",
    "floor": "#2ca02c",
    "rdd-splice": "#1f77b4",
    "rdd-nosplice": "#17becf",
    "rdd-old-splice": "#9467bd",
    "rdd-old-nosplice": "#c5b0d5",
    "socat": "#ff7f0e",
    "proxyd": "#d62728",
}
RDD = ["rdd-splice", "rdd-nosplice"]
PEERS = ["socat", "proxyd"]
REF = "floor"
PIPE_STRUCT_KIB = 2.0  # pipe_inode_info, its 16 pipe_buffer slots, inode, 2 files
NOISE = "within noise"


class Fig(namedtuple("Fig", "m s n")):
    """median, spread (absolute), rounds"""

    @property
    def lo(self):
        return self.m - self.s

    @property
    def hi(self):
        return self.m + self.s


def fig(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    m = statistics.median(vals)
    dev = sorted(abs(v - m) for v in vals)
    keep = len(vals) if len(vals) <= 4 else len(vals) - 1
    return Fig(m, dev[keep - 1], len(vals))


def med(f):
    return f.m if isinstance(f, Fig) else f


def load(out):
    meta = {}
    with open(f"{out}/meta.tsv") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    runs = defaultdict(list)  # (pass, scenario, contender) -> [dict]
    with open(f"{out}/raw.tsv") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 5:
                continue
            kv = {}
            for tok in fields[4:]:
                k, eq, v = tok.partition("=")
                if not eq:
                    continue
                try:
                    kv[k] = float(v)
                except ValueError:
                    kv[k] = v
            kv["round"] = int(fields[3])
            runs[(fields[0], fields[1], fields[2])].append(kv)
    vm = []
    try:
        with open(f"{out}/vm.tsv") as f:
            for line in f:
                x = line.rstrip("\n").split("\t")
                if len(x) == 7:
                    vm.append({"kernel": x[0], "accel": x[1], "run": x[2], "way": x[3],
                               "mode": x[4], "mibps": float(x[5]), "copy": x[6]})
    except (OSError, ValueError):
        pass
    return meta, runs, vm


def all_contenders(meta):
    return meta.get("contenders", "").split() + meta.get("old-contenders", "").split()


def idle_counts(meta):
    return [int(n) for n in meta.get("idle", "").split()]


def figures(meta, runs):
    """(pass, contender) -> {metric: Fig or number}"""
    params = dict(p.split("=") for p in meta.get("params", "").split())
    gib = float(params.get("bytes", 1 << 30)) / (1 << 30)
    res = defaultdict(dict)
    keys = {k[0] for k in runs}
    for p in keys:
        for c in all_contenders(meta):
            f = res[(p, c)]
            get = lambda sc: runs.get((p, sc, c), [])
            f["up"] = fig([r.get("mbps") for r in get("upload")])
            f["down"] = fig([r.get("mbps") for r in get("download")])
            f["p50"] = fig([r.get("p50_us") for r in get("latency")])
            f["p99"] = fig([r.get("p99_us") for r in get("latency")])
            f["c1"] = fig([r.get("cps") for r in get("conn1")])
            f["c32"] = fig([r.get("cps") for r in get("conn32")])
            f["fail"] = sum(r.get("failed", 0) for r in get("conn1") + get("conn32"))
            if c != "direct":
                ups = {r["round"]: r.get("cpu_s") for r in get("upload")}
                downs = {r["round"]: r.get("cpu_s") for r in get("download")}
                f["cpu"] = fig([(ups[r] + downs[r]) / (2 * gib)
                                for r in ups if r in downs and ups[r] is not None
                                and downs[r] is not None])
            for n in idle_counts(meta):
                rs = get(f"idle{n}")
                f[("idle", n, "p50")] = fig([r.get("p50_us") for r in rs])
                f[("idle", n, "p99")] = fig([r.get("p99_us") for r in rs])
                f[("idle", n, "user")] = fig([r.get("cpu_us_user") for r in rs])
                f[("idle", n, "sys")] = fig([r.get("cpu_us_sys") for r in rs])
            rs = get("throttled")
            f["th_mbps"] = fig([r.get("mbps") for r in rs])
            f["th_user"] = fig([r.get("cpu_gib_user") for r in rs])
            f["th_sys"] = fig([r.get("cpu_gib_sys") for r in rs])
            f["th_waits"] = fig([r.get("waits_per_mib") for r in rs])
            f["th_cpu"] = fig([r["cpu_gib_user"] + r["cpu_gib_sys"] for r in rs
                               if r.get("cpu_gib_user") is not None
                               and r.get("cpu_gib_sys") is not None])
            mem = get("memory")
            if mem:
                for k in ("used_rss", "used_anon", "used_pss",
                          "idle_rss", "idle_anon", "idle_pss", "held_rss", "held_anon",
                          "held_pss", "pipes", "queued", "capacity", "procs"):
                    f[k] = statistics.median([r.get(k) for r in mem if r.get(k) is not None]
                                             or [0])
                conns = mem[0].get("conns", 200)
                f["conns"] = conns
                f["conn_anon"] = statistics.median(
                    [(r["held_anon"] - r["idle_anon"]) / conns for r in mem])
                f["conn_rss"] = statistics.median(
                    [(r["held_rss"] - r["idle_rss"]) / conns for r in mem])
                f["conn_pss"] = statistics.median(
                    [(r["held_pss"] - r["idle_pss"]) / conns for r in mem])
                # pipes: kernel structures plus whatever is queued, in pages
                f["conn_pipe"] = statistics.median(
                    [(r["pipes"] * PIPE_STRUCT_KIB + 4 * -(-r["queued"] // 4096)) / conns
                     for r in mem])
                f["conn_total"] = f["conn_anon"] + f["conn_pipe"]
    return res


# ------------------------------------------------------------------ format

def fmt(v, digits=0):
    if v is None:
        return "—"
    v = med(v)
    if digits == 0:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:,.{digits}f}".replace(",", " ")


def spread(f):
    if not isinstance(f, Fig):
        return ""
    if f.n < 2:
        return " (1 round)"
    if not f.m:
        return f" ±{f.s:.1f}"
    pct = 100.0 * f.s / abs(f.m)
    return f" ±{pct:.1f}%" if pct < 1 else f" ±{pct:.0f}%"


def fs(f, digits=0):
    """a figure with its spread"""
    if f is None:
        return "—"
    return fmt(f, digits) + spread(f)


def ratio(v, base):
    v, base = med(v), med(base)
    if v is None or not base:
        return None
    return v / base


def rx(r):
    return "—" if r is None else f"{r:.2f}×"


def cell(v, base, digits=0):
    if v is None:
        return "failed"
    r = ratio(v, base)
    return f"{fs(v, digits)} ({r:.2f}×)" if r is not None else fs(v, digits)


# ------------------------------------------------------------------ tables

def perf_table(res, p, contenders):
    d = res[(p, REF)] if REF in contenders else {}
    lines = [
        "| contender | upload MB/s | download MB/s | p50 µs | p99 µs "
        "| conn/s, 1 client | conn/s, 32 clients | failed conns |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in contenders:
        f = res[(p, c)]
        lines.append("| " + " | ".join([
            NAMES[c], cell(f["up"], d.get("up")), cell(f["down"], d.get("down")),
            cell(f["p50"], d.get("p50"), 1), cell(f["p99"], d.get("p99"), 1),
            cell(f["c1"], d.get("c1")), cell(f["c32"], d.get("c32")), fmt(f["fail"]),
        ]) + " |")
    return "\n".join(lines)


def cost_table(res, p, contenders):
    lines = [
        "| proxy | CPU s per GiB | idle: private / RSS / PSS KiB "
        "| idle after load: private KiB "
        "| 200 open: private / RSS / PSS KiB | per conn: private KiB | pipes per conn "
        "| per conn incl. pipes KiB |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in contenders:
        if c == "direct":
            continue
        f = res[(p, c)]
        procs = f.get("procs")
        procs_note = f" ({fmt(procs)} processes)" if procs and procs > 1 else ""
        pipes = f.get("pipes")
        lines.append("| " + " | ".join([
            NAMES[c], fs(f.get("cpu"), 2),
            f"{fmt(f.get('idle_anon'))} / {fmt(f.get('idle_rss'))} / {fmt(f.get('idle_pss'))}",
            fmt(f.get("used_anon")),
            f"{fmt(f.get('held_anon'))} / {fmt(f.get('held_rss'))} / {fmt(f.get('held_pss'))}"
            + procs_note,
            fmt(f.get("conn_anon"), 1),
            fmt(pipes / f["conns"], 1) if pipes is not None else "—",
            fmt(f.get("conn_total"), 1),
        ]) + " |")
    return "\n".join(lines)


def has_idle(res, p, meta):
    return any(res[(p, c)].get(("idle", n, "p50")) for c in all_contenders(meta)
               for n in idle_counts(meta))


def idle_table(res, p, meta):
    counts = idle_counts(meta)
    head = "| contender |"
    align = "|---|"
    for n in counts:
        head += f" {n} idle: p50 / p99 µs | {n} idle: user / system CPU µs per round trip |"
        align += "--:|--:|"
    lines = [head, align]
    for c in all_contenders(meta):
        f = res[(p, c)]
        if not any(f.get(("idle", n, "p50")) for n in counts):
            continue
        row = [NAMES[c]]
        for n in counts:
            row.append(f"{fs(f.get(('idle', n, 'p50')), 1)} / {fs(f.get(('idle', n, 'p99')), 1)}")
            if c == "direct":
                row.append("(no relay)")
            else:
                row.append(f"{fs(f.get(('idle', n, 'user')), 1)} / "
                           f"{fs(f.get(('idle', n, 'sys')), 1)}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def idle_before_after(res, p, meta):
    counts = idle_counts(meta)
    out = []
    for new, old in (("rdd-splice", "rdd-old-splice"),):
        fn, fo = res[(p, new)], res[(p, old)]
        if not any(fo.get(("idle", n, "user")) for n in counts):
            continue
        ns = " / ".join(str(n) for n in counts)

        def series(f, k):
            return " / ".join(fmt(f.get(("idle", n, k)), 1) for n in counts)

        def growth(f, k):
            a, b = f.get(("idle", counts[0], k)), f.get(("idle", counts[-1], k))
            return rx(ratio(b, a))
        out.append(
            f"{NAMES[new]}, CPU per round trip with {ns} idle connections "
            f"(µs; old build → this build): user {series(fo, 'user')} → {series(fn, 'user')} "
            f"({growth(fo, 'user')} → {growth(fn, 'user')} from {counts[0]} to {counts[-1]}); "
            f"system {series(fo, 'sys')} → {series(fn, 'sys')} "
            f"({growth(fo, 'sys')} → {growth(fn, 'sys')}); "
            f"p50 {series(fo, 'p50')} → {series(fn, 'p50')} µs.")
    return "\n".join(out)


def throttled_table(res, p, meta, params):
    rows = [c for c in all_contenders(meta) if res[(p, c)].get("th_mbps")]
    if not rows:
        return ""
    lines = ["| contender | MB/s (reader paced to "
             f"{fmt(float(params.get('throttle_mbps', 0)))}) | relay CPU s per GiB "
             "| of which user | of which system | waits per MiB |",
             "|---|--:|--:|--:|--:|--:|"]
    for c in rows:
        f = res[(p, c)]
        if c == "direct":
            lines.append(f"| {NAMES[c]} | {fs(f['th_mbps'])} | (no relay) | | | |")
            continue
        lines.append(f"| {NAMES[c]} | {fs(f['th_mbps'])} | {fs(f.get('th_cpu'), 3)} "
                     f"| {fs(f.get('th_user'), 3)} | {fs(f.get('th_sys'), 3)} "
                     f"| {fs(f.get('th_waits'), 1)} |")
    return "\n".join(lines)


def vm_figures(vm):
    """(kernel, accel) -> way -> mode -> (Fig, copies)"""
    out = defaultdict(lambda: defaultdict(dict))
    groups = defaultdict(list)
    for r in vm:
        groups[(r["kernel"], r["accel"], r["way"], r["mode"])].append(r)
    for (k, a, w, m), rs in groups.items():
        out[(k, a)][w][m] = (fig([r["mibps"] for r in rs]),
                             sorted({r["copy"] for r in rs if r["copy"] != "-"}))
    return out


def vm_table(vm):
    figs = vm_figures(vm)
    if not figs:
        return ""
    lines = ["| kernel | qemu | direction | vsock loopback, no daemon MiB/s "
             "| --splice MiB/s | --no-splice MiB/s | faster copy mode |",
             "|---|---|---|--:|--:|--:|---|"]
    for (k, a), ways in sorted(figs.items()):
        for w in ("up", "down"):
            modes = ways.get(w, {})
            sp, rw = modes.get("splice", (None, []))[0], modes.get("no-splice", (None, []))[0]
            if sp and rw:
                if sp.lo > rw.hi:
                    verdict = f"splice ({rx(ratio(sp, rw))})"
                elif rw.lo > sp.hi:
                    verdict = f"read/write ({rx(ratio(rw, sp))})"
                else:
                    verdict = f"{NOISE} (splice {rx(ratio(sp, rw))} read/write)"
            else:
                verdict = "—"
            label = {"up": "up (peer → backend)", "down": "down (backend → peer)"}[w]
            notes = []
            for m in ("splice", "no-splice"):
                copies = modes.get(m, (None, []))[1]
                if copies and copies != [{"splice": "splice", "no-splice": "rw"}[m]]:
                    notes.append(f"--{m} carried by copy={'/'.join(copies)}")
            if notes:
                verdict += "; " + ", ".join(notes)
            lines.append(f"| {k} | {a} | {label} | {fs(modes.get('direct', (None,))[0], 1)} "
                         f"| {fs(sp, 1)} | {fs(rw, 1)} | {verdict} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ goals

def verdict(met, missed):
    if met:
        return True
    if missed:
        return False
    return NOISE


def goals(res, p, meta):
    """[(goal, scenarios, {rdd: (status, text, involved)})]; status is
    True, False, NOISE or None (not measured); involved lists the
    (scenario, contender) runs that more rounds would add to."""
    contenders = all_contenders(meta)
    fl = res[(p, REF)] if REF in contenders else {}
    peers = [c for c in PEERS if c in contenders]
    rdds = [c for c in RDD if c in contenders]
    rows = []

    def add(goal, scenarios, fn):
        rows.append((goal, scenarios, {c: fn(c, res[(p, c)]) for c in rdds}))

    def vs_floor(metric, k, at_least, scenarios, digits=0, unit=""):
        def fn(c, f):
            a, b = f.get(metric), fl.get(metric)
            if a is None or b is None:
                return (None, "—", [])
            if at_least:
                st = verdict(a.lo >= k * b.hi, a.hi < k * b.lo)
                would = a.m >= k * b.m
            else:
                st = verdict(a.hi <= k * b.lo, a.lo > k * b.hi)
                would = a.m <= k * b.m
            text = f"{rx(ratio(a, b))} ({fs(a, digits)}{unit} vs floor {fs(b, digits)}{unit})"
            if st == NOISE:
                text += f"; medians: {'met' if would else 'missed'}"
            inv = [(sc, x) for sc in scenarios for x in (c, REF)]
            return (st, text, inv if st == NOISE else [])
        return fn

    def vs_peers(metric, below, scenarios, digits=0, unit=""):
        def fn(c, f):
            a = f.get(metric)
            ps = [(x, res[(p, x)].get(metric)) for x in peers]
            ps = [(x, v) for x, v in ps if v is not None]
            if a is None or not ps:
                return (None, "—", [])
            if below:
                met = all(a.hi < v.lo for _, v in ps)
                missed = any(a.lo >= v.hi for _, v in ps)
                close = [x for x, v in ps if not (a.hi < v.lo or a.lo >= v.hi)]
                bx, bv = min(ps, key=lambda t: t[1].m)
                would = a.m < bv.m
            else:
                met = all(a.lo > v.hi for _, v in ps)
                missed = any(a.hi <= v.lo for _, v in ps)
                close = [x for x, v in ps if not (a.lo > v.hi or a.hi <= v.lo)]
                bx, bv = max(ps, key=lambda t: t[1].m)
                would = a.m > bv.m
            st = verdict(met, missed)
            text = f"{fs(a, digits)}{unit} vs best peer {fs(bv, digits)}{unit} ({NAMES[bx]})"
            if st == NOISE:
                text += f"; medians: {'met' if would else 'missed'}"
            inv = [(sc, x) for sc in scenarios for x in [c] + close]
            return (st, text, inv if st == NOISE else [])
        return fn

    add("upload ≥ 0.97× floor", ["upload"], vs_floor("up", 0.97, True, ["upload"], unit=" MB/s"))
    add("download ≥ 0.97× floor", ["download"],
        vs_floor("down", 0.97, True, ["download"], unit=" MB/s"))
    add("p50 ≤ 1.1× floor", ["latency"], vs_floor("p50", 1.1, False, ["latency"], 1, " µs"))
    add("p99 below every peer", ["latency"], vs_peers("p99", True, ["latency"], 1, " µs"))
    add("conn/s (1 client) ≥ floor", ["conn1"], vs_floor("c1", 1.0, True, ["conn1"]))
    add("conn/s (32 clients) above every peer", ["conn32"],
        vs_peers("c32", False, ["conn32"]))
    add("CPU s per GiB ≤ floor", ["upload", "download"],
        vs_floor("cpu", 1.0, False, ["upload", "download"], 3, " s"))

    counts = idle_counts(meta)
    if len(counts) >= 2:
        n0, n1 = counts[0], counts[-1]

        def idle(c, f):
            a, b = f.get(("idle", n1, "user")), f.get(("idle", n0, "user"))
            if a is None or b is None:
                return (None, "—", [])
            st = verdict(a.hi <= 1.3 * b.lo, a.lo > 1.3 * b.hi)
            text = (f"{rx(ratio(a, b))} ({fs(a, 1)} µs vs {fs(b, 1)} µs; system "
                    f"{fmt(f.get(('idle', n1, 'sys')), 1)} vs {fmt(f.get(('idle', n0, 'sys')), 1)} µs)")
            if st == NOISE:
                text += f"; medians: {'met' if a.m <= 1.3 * b.m else 'missed'}"
            inv = [(f"idle{n0}", c), (f"idle{n1}", c)]
            return (st, text, inv if st == NOISE else [])
        add(f"user CPU per round trip, {n1} idle conns ≤ 1.3× {n0}", [f"idle{n0}", f"idle{n1}"],
            idle)

    add("zero failed connections", [],
        lambda c, f: (f["fail"] == 0, f"{fmt(f['fail'])} failed", []))

    def idle_mem(c, f):
        # the worse of a fresh instance and one that has carried traffic
        v, u = f.get("idle_anon"), f.get("used_anon")
        if v is None:
            return (None, "—", [])
        worst = max(v, u or 0)
        return (worst < 512, f"{fmt(v)} KiB fresh, {fmt(u)} KiB after load", [])
    add("idle private memory < 512 KiB", [], idle_mem)

    def per_conn(c, f):
        v = f.get("conn_total")
        if v is None:
            return (None, "—", [])
        return (v < 80, f"{v:.1f} KiB ({f['conn_anon']:.1f} private + {f['conn_pipe']:.1f} pipes)",
                [])
    add("per connection < 80 KiB (private + pipes)", [], per_conn)
    return rows, rdds


def goals_table(res, p, meta):
    contenders = all_contenders(meta)
    if REF not in contenders:
        return "(the goals need the floor contender)"
    rows, rdds = goals(res, p, meta)
    if not rdds:
        return "(rdd-guest was not measured)"
    lines = ["| goal | " + " | ".join(NAMES[c] for c in rdds) + " |",
             "|---|" + "---|" * len(rdds)]
    tally = defaultdict(int)
    for goal, _, per in rows:
        cells = []
        for c in rdds:
            st, text, _ = per[c]
            mark = {True: "met", False: "**missed**", NOISE: f"_{NOISE}_", None: "—"}[st]
            tally[(c, st)] += 1
            cells.append(f"{mark}: {text}")
        lines.append(f"| {goal} | " + " | ".join(cells) + " |")
    summary = "; ".join(
        f"{NAMES[c]}: {tally[(c, True)]} met, {tally[(c, False)]} missed, "
        f"{tally[(c, NOISE)]} {NOISE}" for c in rdds)
    return "\n".join(lines) + "\n\n" + summary + "."


def undecided(out, p, sc, max_rounds):
    meta, runs, _ = load(out)
    res = figures(meta, runs)
    rows, rdds = goals(res, p, meta)
    want = []
    for _, scenarios, per in rows:
        if sc not in scenarios:
            continue
        for c in rdds:
            st, _, inv = per[c]
            if st == NOISE:
                want += [x for x in inv if x not in want]
    order = all_contenders(meta)
    want.sort(key=lambda x: (x[0] != sc, order.index(x[1]) if x[1] in order else 99))
    for xsc, xc in want:
        n = len(runs.get((p, xsc, xc), []))
        if n < 1 or n >= max_rounds:
            continue
        print(f"{xsc} {xc} {n + 1} {min(max_rounds, max(n + 1, 5))}")
    return 0


def best_peer_line(res, p, contenders):
    d = res[(p, REF)]
    peers = [c for c in PEERS if c in contenders]
    if not peers or REF not in contenders:
        return ""

    def best(metric, pick):
        vals = [ratio(res[(p, c)].get(metric), d.get(metric)) for c in peers]
        vals = [v for v in vals if v is not None]
        return f"{pick(vals):.2f}×" if vals else "—"
    return (f"Best peer, {p}: upload {best('up', max)}, download {best('down', max)}, "
            f"p50 {best('p50', min)}, conn/s (1 client) {best('c1', max)} of the floor.")


# ------------------------------------------------------------------ charts

NO_DATA = ('set label 99 "not measured in this run" at graph 0.5,0.5 center\n'
           "plot 0 with lines lc rgb 'white' notitle\nunset label 99")


def write_plot(out, res, passes, contenders, meta):
    metrics = [("upload", "up", False), ("download", "down", False),
               ("p50 latency", "p50", True), ("p99 latency", "p99", True),
               ("conn/s, 1 client", "c1", False), ("conn/s, 32 clients", "c32", False)]
    ymax = {}
    for p in passes:
        d = res[(p, REF)]
        top = 1.0  # over the relays: direct, far above on some figures, is cut off
        with open(f"{out}/plot-{p}.dat", "w") as f:
            f.write("# metric " + " ".join(contenders) + "\n")
            for label, m, inverse in metrics:
                row = []
                for c in contenders:
                    v, base = med(res[(p, c)].get(m)), med(d.get(m))
                    if v is None or not base:
                        row.append("NaN")
                        continue
                    r = (base / v) if inverse else (v / base)
                    if c != "direct":
                        top = max(top, r)
                    row.append(f"{r:.4f}")
                f.write(f'"{label}" ' + " ".join(row) + "\n")
        ymax[p] = top * 1.15
    proxies = [c for c in contenders if c != "direct"]
    with open(f"{out}/plot-cost.dat", "w") as f:
        f.write("# proxy " + " ".join(f"cpu-{p}" for p in passes) + " private pipes\n")
        for c in proxies:
            row = [fmt(res[(p, c)].get("cpu"), 3) for p in passes]
            f0 = res[(passes[0], c)]
            row += [fmt(f0.get("conn_anon"), 2), fmt(f0.get("conn_pipe"), 2)]
            row = ["NaN" if x == "—" else x.replace(" ", "") for x in row]
            f.write(f'"{NAMES[c]}" ' + " ".join(row) + "\n")

    n = len(contenders)
    gp = [
        'set terminal pngcairo size 1600,1000 font "DejaVu Sans,11"',
        'set output "results.png"',
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.9 border -1",
        "set boxwidth 0.9",
        "set grid ytics",
        "set xtics nomirror",
        "set multiplot",
    ]
    h = 1.0 / len(passes)
    for i, p in enumerate(passes):
        placement = ("client on CPU 0, backend + proxy on CPU 1" if p == "pinned"
                     else "no CPU pinning")
        gp += [
            f"set origin 0,{1.0 - (i + 1) * h:.3f}",
            f"set size 0.64,{h:.3f}",
            f'set title "{p} ({placement}): relative to the floor (a minimal splice relay), '
            f'higher is better\\n(throughput and conn/s: contender / floor; latency: floor / contender)"',
            f"set yrange [0:{ymax[p]:.2f}]",
            f"set xrange [-0.6:{len(metrics) - 0.4}]",
            'set ylabel "× floor"',
            'set key outside bottom center horizontal font ",10"',
        ]
        plots = []
        for j, c in enumerate(contenders):
            src = f'"plot-{p}.dat"' if j == 0 else "''"
            xt = ":xtic(1)" if j == 0 else ""
            plots.append(f'{src} using {j + 2}{xt} title "{NAMES[c]}" lc rgb "{COLORS[c]}"')
        cap = ymax[p] * 0.95
        for j, c in enumerate(contenders):
            off = (j - (n - 1) / 2.0) / (n + 1)
            plots.append(f"'' using ($0+{off:.4f}):(column({j + 2}) > {cap:.3f} ? {cap:.3f} : "
                         f"column({j + 2})):"
                         f'(sprintf("%.2f", column({j + 2}))) with labels '
                         'offset 0,0.6 font ",7" notitle')
        plots.append("1 with lines dt 2 lc rgb 'black' notitle")
        if any(res[(p, c)].get(m) is not None for c in contenders for _, m, _ in metrics):
            gp.append("plot " + ", ".join(plots))
        else:
            gp.append(NO_DATA)
    gp += [
        "set origin 0.64,0.5",
        "set size 0.36,0.5",
        'set title "CPU seconds per GiB relayed\\n(lower is better)"',
        'set ylabel "s / GiB"',
        "set yrange [0:*]",
        f"set xrange [-0.6:{len(proxies) - 0.4}]",
        'set xtics rotate by -20 font ",8"',
        'set key inside top left vertical font ",10"',
        "set offsets 0,0,graph 0.08,0",
    ]
    cp = []
    for j, p in enumerate(passes):
        src = '"plot-cost.dat"' if j == 0 else "''"
        xt = ":xtic(1)" if j == 0 else ""
        shade = ["#4c72b0", "#a6bddb"][j % 2]
        cp.append(f'{src} using {j + 2}{xt} title "{p}" lc rgb "{shade}"')
    m = len(passes)
    for j, p in enumerate(passes):
        off = (j - (m - 1) / 2.0) / (m + 1)
        cp.append(f"'' using ($0+{off:.4f}):(column({j + 2})):"
                  f'(sprintf("%.2f", column({j + 2}))) with labels offset 0,0.6 font ",8" notitle')
    if any(res[(p, c)].get("cpu") is not None for p in passes for c in proxies):
        gp.append("plot " + ", ".join(cp))
    else:
        gp.append(NO_DATA)
    conns = res[(passes[0], proxies[0])].get("conns", 200) if proxies else 200
    k = m + 2
    have_mem = any(res[(passes[0], c)].get("conn_anon") is not None for c in proxies)
    gp += [
        "set origin 0.64,0.0",
        "set size 0.36,0.5",
        "set offsets 0,0,0,0",
        'set key inside top right vertical font ",10"',
        "set style histogram rowstacked",
        "set boxwidth 0.6",
        f'set title "KiB per connection with {conns:.0f} open\\n({passes[0]}; lower is better)"',
        'set ylabel "KiB"',
        (f'plot "plot-cost.dat" using {k}:xtic(1) title "private memory" lc rgb "#55a868", '
         f"'' using {k + 1} title \"pipes (estimate)\" lc rgb \"#c4e3c9\", "
         f"'' using ($0):(column({k})+column({k + 1})):"
         f'(sprintf("%.1f", column({k})+column({k + 1}))) with labels offset 0,0.6 font ",8" notitle, '
         "80 with lines dt 2 lc rgb 'black' title 'goal for rdd-guest'") if have_mem else NO_DATA,
        "unset multiplot",
    ]
    gp += idle_plot(out, res, passes, meta)
    with open(f"{out}/results.gp", "w") as f:
        f.write("\n".join(x for x in gp if x) + "\n")


def idle_plot(out, res, passes, meta):
    """idle.png: p50 and the relay's user and system CPU per round trip
    against the number of idle connections held open"""
    p = meta.get("goal-pass", passes[0])
    if p not in passes or not has_idle(res, p, meta):
        return []
    counts = idle_counts(meta)
    cs = [c for c in all_contenders(meta)
          if any(res[(p, c)].get(("idle", n, "p50")) for n in counts)]
    with open(f"{out}/plot-idle.dat", "w") as f:
        f.write("# idle " + " ".join(f"{c}-{k} {c}-{k}-spread" for c in cs
                                     for k in ("p50", "user", "sys")) + "\n")
        for n in counts:
            row = [str(n)]
            for c in cs:
                for k in ("p50", "user", "sys"):
                    v = res[(p, c)].get(("idle", n, k))
                    row += ["NaN", "NaN"] if v is None else [f"{v.m:.3f}", f"{v.s:.3f}"]
            f.write(" ".join(row) + "\n")
    gp = [
        'set terminal pngcairo size 1600,560 font "DejaVu Sans,11"',
        'set output "idle.png"',
        "set style data linespoints",
        "set grid",
        "set xtics norotate (" + ", ".join(str(n) for n in counts) + ")",
        "set xrange [" + f"{counts[0] - 10}:{counts[-1] + 10}" + "]",
        'set xlabel "idle connections held open"',
        "set yrange [0:*]",
        "set multiplot layout 1,3",
    ]
    titles = [("p50 of a 64-byte ping-pong, µs", "µs", 0),
              ("relay's user CPU per round trip, µs", "µs", 1),
              ("relay's system CPU per round trip, µs", "µs", 2)]
    # bars: the spread of the rounds
    for i, (title, unit, off) in enumerate(titles):
        gp += [f'set title "{title}\\n({p}; lower is better)"', f'set ylabel "{unit}"',
               'set key top left font ",9"' if i == 0 else "unset key"]
        plots = []
        for j, c in enumerate(cs):
            if off and c == "direct":
                continue
            col = 2 + 6 * j + 2 * off
            dash = " dt 2" if c.startswith("rdd-old") else ""
            plots.append(f'"plot-idle.dat" using ($1+{j - len(cs) / 2:.1f}):{col}:{col + 1} '
                         f'with yerrorlines title "{NAMES[c]}" '
                         f'lc rgb "{COLORS[c]}" lw 2 pt 7 ps 0.7{dash}')
        gp.append("plot " + ", ".join(plots))
    gp.append("unset multiplot")
    return gp


# ------------------------------------------------------------------ text

NOTES = """\
How to read it: each figure is the median of the timed rounds (three; up to
five where a goal compares two figures within each other's spread, as long
as the extra rounds stay within their time budget), "±" its
spread: the largest distance of a round from the median (from five rounds
on, leaving out the round furthest away), in percent of the median. The
bracket gives the ratio to the floor in the same pass: floor is
bench/floor.c, a minimal relay built only for the bench (one thread per
direction, blocking splice through a 256 KiB pipe, no limits, policy or
drain), the least a userspace relay can cost on this placement; direct is
no relay at all. A goal is "within noise" when the two spreads it compares
overlap; then the medians' verdict is given beside it. MB/s counts 10^6
bytes per second, over 1 GiB each way (client to backend is "upload", like
a build context; backend to client is "download", like `docker save`).
Latency is one 64-byte round trip on one connection (nearest-rank p50/p99
over the round trips of a run: 20 000, or as many as fit in 5 s). A connection is connect, 100-byte request,
100-byte reply, close; failed connections are summed over all rounds. CPU
is the proxy's user+system time from /proc/PID/stat (all its threads; socat:
with its reaped children) over the bulk runs, divided by the GiB relayed;
this kernel samples user and system time at its tick (250 Hz), so the split
of a small figure is noisy. The idle scenarios repeat the ping-pong (30 000
round trips, or as many as fit in 6 s) with N other relayed connections
open and idle, and divide the proxy's user and system time over the
ping-pong by the round trips. The throttled scenario
downloads through the proxy to a reader slower than the proxy (reads of at
most 16 KiB, paced), so the proxy's writes towards it stop short: the path
of a download to a slow hv_sock peer; "waits" counts how often the proxy's
one thread blocked (voluntary context switches: each a select or
epoll_wait that had to wait), per MiB relayed (not for floor and socat,
whose connections live in threads or processes that are gone by then). Memory: "idle" is a fresh instance
after one request, "after load" the instance that carried all the other
scenarios; private is anonymous memory that no other process shares, summed
over all of the proxy's processes; per connection is (fresh instance with
200 open - idle) / 200. The pipes a proxy holds are counted through
/proc/PID/fd (F_GETPIPE_SZ and FIONREAD on each reopened pipe; a pipe
that a thread is blocked in splice on, as floor's are, is counted, not
opened); their cost is estimated at 2 KiB of kernel structures each plus
the bytes queued in them, rounded up to pages. Floor's private memory per
connection is mostly its two threads' stacks. The VM figures are tests/vm/run.sh's throughput
scenario (real AF_VSOCK through vsock_loopback in a qemu guest, one run of
each figure per boot; under TCG, so they compare copy modes on a kernel,
not machines)."""


NOTES = textwrap.fill(" ".join(NOTES.split()), 76)


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--undecided":
        return undecided(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    out, readme = sys.argv[1], sys.argv[2]
    meta, runs, vm = load(out)
    res = figures(meta, runs)
    contenders = meta["contenders"].split()
    params = dict(p.split("=") for p in meta.get("params", "").split())
    passes = [p for p in ("pinned", "unpinned") if any(k[0] == p for k in runs)]
    if not passes:
        print("report: no runs recorded", file=sys.stderr)
        return 1
    goal_p = meta.get("goal-pass", "pinned")
    if goal_p not in passes:
        goal_p = passes[0]

    body = []
    placement = {"pinned": "client on CPU 0, backend and proxy sharing CPU 1",
                 "unpinned": "no CPU pinning"}
    # the goal pass first: its goals, then its tables
    order = [goal_p] + [p for p in passes if p != goal_p]
    for p in order:
        body.append(f"### {p.capitalize()} ({placement[p]})\n")
        if p == goal_p:
            body.append(f"#### Goals (against the floor, {p} pass)\n")
            body.append(goals_table(res, p, meta) + "\n")
            body.append("#### Figures\n")
        body.append(perf_table(res, p, contenders) + "\n")
        body.append(cost_table(res, p, contenders) + "\n")
        line = best_peer_line(res, p, contenders)
        if line:
            body.append(line + "\n")
        if has_idle(res, p, meta):
            body.append(f"#### Idle connections held open ({p}; chart: build/bench/idle.png)\n")
            body.append(idle_table(res, p, meta) + "\n")
            ba = idle_before_after(res, p, meta)
            if ba:
                body.append(ba + "\n")
        th = throttled_table(res, p, meta, params)
        if th:
            body.append(f"#### Throttled reader ({p}: "
                        f"{float(params.get('throttle_bytes', 0)) / (1 << 20):.0f} MiB "
                        f"downloaded by a reader of at most "
                        f"{float(params.get('throttle_chunk', 0)) / 1024:.0f} KiB a read)\n")
            body.append(th + "\n")
    body.append("### AF_VSOCK in a VM (tests/vm/run.sh, throughput scenario)\n")
    vt = vm_table(vm)
    if vt:
        body.append(vt + "\n")
        body.append(f"Runs: {meta.get('vm', '?')}; {meta.get('runtime-vm', '?')}.\n")
    else:
        body.append(f"Not measured in this run: {meta.get('vm', 'no figures')}.\n")

    head = [
        f"Machine: {meta.get('machine', '?')}  ",
        f"Date: {meta.get('date', '?')}; run time {meta.get('runtime', '?')}"
        + (f" ({meta['runtime-local']} local, of which {meta.get('runtime-extra', '?')} "
           f"extra rounds; {meta.get('runtime-vm', 'no')} VM)"
           if "runtime-local" in meta else "") + "  ",
        f"Command: `{meta.get('command', '?')}`  ",
        f"Load average (1, 5, 15 min) before / after the local runs: {meta.get('load-start', '?')} / "
        f"{meta.get('load-end', '?')} (2 cores; whatever else runs skews every figure)  ",
        "Versions: " + ", ".join(v for k, v in sorted(meta.items()) if k.startswith("version-"))
        + "  ",
    ]
    if meta.get("old-build"):
        head.append(f"Old build (idle and throttled scenarios): {meta['old-build']}  ")
    head += [f"Parameters: {meta.get('params', '')}", ""]
    results = "# rdd-guest benchmark\n\n" + "\n".join(head) + "\n" + "\n".join(body) + "\n" + NOTES + "\n"
    with open(f"{out}/results.md", "w") as f:
        f.write(results)
    section = ("## Benchmarks\n\n"
               "`make bench` (see bench/) runs rdd-guest beside the direct connection, a minimal "
               "reference relay (\"floor\", bench/floor.c, never installed) and the proxies a "
               "user would pick instead, all on Unix sockets in front of the same backend, "
               "interleaved, three rounds or more after a warm-up; then tests/vm/run.sh's "
               "throughput scenario under qemu when qemu is installed. It writes "
               "`build/bench/results.md` and the charts `build/bench/results.png` and "
               "`build/bench/idle.png`.\n\n"
               + "\n".join(head) + "\n" + "\n".join(body) + "\n" + NOTES + "\n")
    with open(readme, "w") as f:
        f.write(section)
    write_plot(out, res, passes, contenders, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
