#!/usr/bin/env python3
"""Turns build/bench/raw.tsv into results.md, the gnuplot script and data
for results.png, and bench/README-section.md.

usage: report.py OUT_DIR README_SECTION_PATH

raw.tsv: one line per timed run: pass, scenario, contender, round, then the
key=value pairs rddbench printed (plus cpu_s for the bulk runs, and the
memory figures). Every figure in the tables is the median over the rounds.
"""
import statistics
import sys
from collections import defaultdict

NAMES = {
    "direct": "direct (no proxy)",
    "rdd-splice": "rdd-guest --splice",
    "rdd-nosplice": "rdd-guest --no-splice",
    "socat": "socat",
    "proxyd": "systemd-socket-proxyd",
}
COLORS = {
    "direct": "#7f7f7f",
    "rdd-splice": "#1f77b4",
    "rdd-nosplice": "#17becf",
    "socat": "#ff7f0e",
    "proxyd": "#d62728",
}
RDD = ["rdd-splice", "rdd-nosplice"]
PEERS = ["socat", "proxyd"]
PIPE_STRUCT_KIB = 2.0  # pipe_inode_info, its 16 pipe_buffer slots, inode, 2 files


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
    return meta, runs


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def figures(meta, runs):
    """(pass, contender) -> {metric: median}"""
    params = dict(p.split("=") for p in meta.get("params", "").split())
    gib = float(params.get("bytes", 1 << 30)) / (1 << 30)
    res = defaultdict(dict)
    keys = {k[0] for k in runs}
    contenders = meta.get("contenders", "").split()
    for p in keys:
        for c in contenders:
            f = res[(p, c)]
            get = lambda sc: runs.get((p, sc, c), [])
            f["up"] = med([r.get("mbps") for r in get("upload")])
            f["down"] = med([r.get("mbps") for r in get("download")])
            f["p50"] = med([r.get("p50_us") for r in get("latency")])
            f["p99"] = med([r.get("p99_us") for r in get("latency")])
            f["c1"] = med([r.get("cps") for r in get("conn1")])
            f["c32"] = med([r.get("cps") for r in get("conn32")])
            f["fail"] = sum(r.get("failed", 0) for r in get("conn1") + get("conn32"))
            if c != "direct":
                ups = {r["round"]: r.get("cpu_s") for r in get("upload")}
                downs = {r["round"]: r.get("cpu_s") for r in get("download")}
                f["cpu"] = med([(ups[r] + downs[r]) / (2 * gib)
                                for r in ups if r in downs and ups[r] is not None
                                and downs[r] is not None])
            mem = get("memory")
            if mem:
                for k in ("used_rss", "used_anon", "used_pss",
                          "idle_rss", "idle_anon", "idle_pss", "held_rss", "held_anon",
                          "held_pss", "pipes", "queued", "capacity", "procs"):
                    f[k] = med([r.get(k) for r in mem])
                conns = mem[0].get("conns", 200)
                f["conns"] = conns
                f["conn_anon"] = med([(r["held_anon"] - r["idle_anon"]) / conns for r in mem])
                f["conn_rss"] = med([(r["held_rss"] - r["idle_rss"]) / conns for r in mem])
                f["conn_pss"] = med([(r["held_pss"] - r["idle_pss"]) / conns for r in mem])
                # pipes: kernel structures plus whatever is queued, in pages
                f["conn_pipe"] = med([(r["pipes"] * PIPE_STRUCT_KIB
                                       + 4 * -(-r["queued"] // 4096)) / conns for r in mem])
                f["conn_total"] = f["conn_anon"] + f["conn_pipe"]
    return res


def fmt(v, digits=0):
    if v is None:
        return "—"
    if digits == 0:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:.{digits}f}"


def ratio(v, base):
    if v is None or not base:
        return None
    return v / base


def cell(v, base, digits=0):
    if v is None:
        return "failed"
    r = ratio(v, base)
    return f"{fmt(v, digits)} ({r:.2f}×)" if r is not None else fmt(v, digits)


def perf_table(res, p, contenders):
    d = res[(p, "direct")] if "direct" in contenders else {}
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
            NAMES[c], fmt(f.get("cpu"), 2),
            f"{fmt(f.get('idle_anon'))} / {fmt(f.get('idle_rss'))} / {fmt(f.get('idle_pss'))}",
            fmt(f.get("used_anon")),
            f"{fmt(f.get('held_anon'))} / {fmt(f.get('held_rss'))} / {fmt(f.get('held_pss'))}"
            + procs_note,
            fmt(f.get("conn_anon"), 1),
            fmt(pipes / f["conns"], 1) if pipes is not None else "—",
            fmt(f.get("conn_total"), 1),
        ]) + " |")
    return "\n".join(lines)


def goals(res, p, contenders):
    """Rows of (goal, {rdd contender: (met, text)})."""
    d = res[(p, "direct")]
    peers = [c for c in PEERS if c in contenders]
    rdds = [c for c in RDD if c in contenders]
    rows = []

    def best(metric, pick):
        vals = [res[(p, c)].get(metric) for c in peers]
        vals = [v for v in vals if v is not None]
        return pick(vals) if vals else None

    def add(goal, fn):
        rows.append((goal, {c: fn(res[(p, c)]) for c in rdds}))

    def at_least(metric, target):
        def fn(f):
            r = ratio(f.get(metric), d.get(metric))
            return (None, "—") if r is None else (r >= target, f"{r:.2f}×")
        return fn

    add("upload ≥ 0.9× direct", at_least("up", 0.9))
    add("download ≥ 0.9× direct", at_least("down", 0.9))

    def p50(f):
        r = ratio(f.get("p50"), d.get("p50"))
        return (None, "—") if r is None else (r <= 1.8, f"{r:.2f}×")
    add("p50 ≤ 1.8× direct", p50)

    bp99 = best("p99", min)

    def p99(f):
        if f.get("p99") is None or bp99 is None:
            return (None, "—")
        return (f["p99"] < bp99, f"{f['p99']:.1f} µs vs best peer {bp99:.1f}")
    add("p99 below every peer", p99)
    add("conn/s (1 client) ≥ 0.6× direct", at_least("c1", 0.6))
    bc32 = best("c32", max)

    def c32(f):
        if f.get("c32") is None or bc32 is None:
            return (None, "—")
        return (f["c32"] > bc32, f"{fmt(f['c32'])} vs best peer {fmt(bc32)}")
    add("conn/s (32 clients) above every peer", c32)
    add("zero failed connections",
        lambda f: (f["fail"] == 0, f"{fmt(f['fail'])} failed"))

    def idle(f):
        # the worse of a fresh instance and one that has carried traffic
        v, u = f.get("idle_anon"), f.get("used_anon")
        if v is None:
            return (None, "—")
        worst = max(v, u or 0)
        return (worst < 512, f"{fmt(v)} KiB fresh, {fmt(u)} KiB after load")
    add("idle private memory < 512 KiB", idle)

    def per_conn(f):
        v = f.get("conn_total")
        if v is None:
            return (None, "—")
        return (v < 80, f"{v:.1f} KiB ({f['conn_anon']:.1f} private + {f['conn_pipe']:.1f} pipes)")
    add("per connection < 80 KiB (private + pipes)", per_conn)
    bcpu = best("cpu", min)

    def cpu(f):
        if f.get("cpu") is None or bcpu is None:
            return (None, "—")
        return (f["cpu"] < bcpu, f"{f['cpu']:.2f} s vs best peer {bcpu:.2f}")
    add("CPU per GiB below every peer", cpu)
    return rows, rdds


def goals_table(res, p, contenders):
    if "direct" not in contenders:
        return "(goals need the direct connection)"
    rows, rdds = goals(res, p, contenders)
    if not rdds:
        return "(rdd-guest was not measured)"
    lines = ["| goal | " + " | ".join(NAMES[c] for c in rdds) + " |",
             "|---|" + "---|" * len(rdds)]
    for goal, per in rows:
        cells = []
        for c in rdds:
            met, text = per[c]
            mark = "—" if met is None else ("met" if met else "**missed**")
            cells.append(f"{mark}: {text}")
        lines.append(f"| {goal} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_peer_line(res, p, contenders):
    d = res[(p, "direct")]
    peers = [c for c in PEERS if c in contenders]
    if not peers or "direct" not in contenders:
        return ""
    def best(metric, pick):
        vals = [ratio(res[(p, c)].get(metric), d.get(metric)) for c in peers]
        vals = [v for v in vals if v is not None]
        return f"{pick(vals):.2f}×" if vals else "—"
    return (f"Best peer, {p}: upload {best('up', max)}, download {best('down', max)}, "
            f"p50 {best('p50', min)}, conn/s (1 client) {best('c1', max)} of direct.")


NO_DATA = ('set label 99 "not measured in this run" at graph 0.5,0.5 center\n'
           "plot 0 with lines lc rgb 'white' notitle\nunset label 99")


def write_plot(out, res, passes, contenders):
    metrics = [("upload", "up", False), ("download", "down", False),
               ("p50 latency", "p50", True), ("p99 latency", "p99", True),
               ("conn/s, 1 client", "c1", False), ("conn/s, 32 clients", "c32", False)]
    ymax = {}
    for p in passes:
        d = res[(p, "direct")]
        top = 1.0
        with open(f"{out}/plot-{p}.dat", "w") as f:
            f.write("# metric " + " ".join(contenders) + "\n")
            for label, m, inverse in metrics:
                row = []
                for c in contenders:
                    v, base = res[(p, c)].get(m), d.get(m)
                    if v is None or not base:
                        row.append("NaN")
                        continue
                    r = (base / v) if inverse else (v / base)
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
            row = ["NaN" if x == "—" else x for x in row]
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
            f'set title "{p} ({placement}): relative to the direct connection, '
            f'higher is better\\n(throughput and conn/s: proxy / direct; latency: direct / proxy)"',
            f"set yrange [0:{ymax[p]:.2f}]",
            f"set xrange [-0.6:{len(metrics) - 0.4}]",
            'set ylabel "× direct"',
            'set key outside bottom center horizontal font ",10"',
        ]
        plots = []
        for j, c in enumerate(contenders):
            src = f'"plot-{p}.dat"' if j == 0 else "''"
            xt = ":xtic(1)" if j == 0 else ""
            plots.append(f'{src} using {j + 2}{xt} title "{NAMES[c]}" lc rgb "{COLORS[c]}"')
        for j, c in enumerate(contenders):
            off = (j - (n - 1) / 2.0) / (n + 1)
            plots.append(f"'' using ($0+{off:.4f}):(column({j + 2})):"
                         f'(sprintf("%.2f", column({j + 2}))) with labels '
                         'offset 0,0.6 font ",8" notitle')
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
        'set xtics rotate by -15 font ",9"',
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
    with open(f"{out}/results.gp", "w") as f:
        f.write("\n".join(gp) + "\n")


NOTES = """\
How to read it: each figure is the median of the timed rounds, and the
bracket gives its ratio to the direct connection in the same pass. MB/s
counts 10^6 bytes per second, over 1 GiB each way (client to backend is
"upload", like a build context; backend to client is "download", like
`docker save`). Latency is one 64-byte round trip on one connection
(nearest-rank p50/p99 over the round trips of a run). A connection is
connect, 100-byte request, 100-byte reply, close; failed connections are
summed over all rounds. CPU is the proxy's user+system time (socat: with its
reaped children) over the bulk runs, divided by the GiB relayed. Memory:
"idle" is a fresh instance after one request, "after load" the instance
that carried all the other scenarios; private is anonymous memory that no
other process shares, summed over all of the proxy's processes; per
connection is (fresh instance with 200 open - idle) / 200. The
pipes a proxy holds are counted through /proc/PID/fd (F_GETPIPE_SZ and
FIONREAD on each reopened pipe); their cost is estimated at 2 KiB of kernel
structures each plus the bytes queued in them, rounded up to pages."""


def main():
    out, readme = sys.argv[1], sys.argv[2]
    meta, runs = load(out)
    res = figures(meta, runs)
    contenders = meta["contenders"].split()
    passes = [p for p in ("pinned", "unpinned") if any(k[0] == p for k in runs)]
    if not passes:
        print("report: no runs recorded", file=sys.stderr)
        return 1

    body = []
    for p in passes:
        placement = ("client on CPU 0, backend and proxy sharing CPU 1" if p == "pinned"
                     else "no CPU pinning")
        body.append(f"### {p.capitalize()} ({placement})\n")
        body.append(perf_table(res, p, contenders) + "\n")
        body.append(cost_table(res, p, contenders) + "\n")
        line = best_peer_line(res, p, contenders)
        if line:
            body.append(line + "\n")
    goal_p = "pinned" if "pinned" in passes else passes[0]
    body.append(f"### Goals ({goal_p} pass)\n")
    body.append(goals_table(res, goal_p, contenders) + "\n")

    head = [
        f"Machine: {meta.get('machine', '?')}  ",
        f"Date: {meta.get('date', '?')}; run time {meta.get('runtime', '?')}  ",
        f"Command: `{meta.get('command', '?')}`  ",
        "Versions: " + ", ".join(v for k, v in sorted(meta.items()) if k.startswith("version-"))
        + "  ",
        f"Parameters: {meta.get('params', '')}",
        "",
    ]
    results = "# rdd-guest benchmark\n\n" + "\n".join(head) + "\n" + "\n".join(body) + "\n" + NOTES + "\n"
    with open(f"{out}/results.md", "w") as f:
        f.write(results)
    section = ("## Benchmarks\n\n"
               "rdd-guest beside the direct connection and the proxies a user would pick "
               "instead, all on Unix sockets in front of the same backend "
               "(`make bench`, see bench/). Chart: build/bench/results.png.\n\n"
               + "\n".join(head) + "\n" + "\n".join(body) + "\n" + NOTES + "\n")
    with open(readme, "w") as f:
        f.write(section)
    write_plot(out, res, passes, contenders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
