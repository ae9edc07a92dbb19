#!/usr/bin/env python3
"""Pieces of the upstream tree patched by contrib/rancher-desktop-opensuse/,
for tests/packaging/run.sh to run outside Docker and KIWI.

    upstream_series.py config TREE   print config.sh's rdd-guest part as a
                                     script KIWI could run: the preamble (up
                                     to set -o errexit), the wsl branch's `if`
                                     with only the rdd-guest lines in it, and
                                     the removal of /build/
    upstream_series.py stage TREE    print the shell command of the Dockerfile
                                     stage `rdd-guest` that builds the RPM (the
                                     RUN that calls rpmbuild), continuation
                                     lines joined as Docker joins them, RUN
                                     and its --mount options dropped

Each fails (exit 1, with the reason) when the tree is not shaped as the
series promises: the rdd-guest lines inside the `if` of the wsl branch, and
/build/ removed only after that branch.
"""
import os
import re
import sys


def fail(why):
    print(why, file=sys.stderr)
    sys.exit(1)


def config(tree):
    with open(os.path.join(tree, "config.sh")) as f:
        lines = f.read().splitlines()
    source = [i for i, l in enumerate(lines) if l.strip() == ". /build/rdd-guest/rdd-guest.sh"]
    if len(source) != 1:
        fail(f"config.sh sources /build/rdd-guest/rdd-guest.sh {len(source)} times, want once")
    start = end = source[0]
    # The lines that belong to it: comments and RDD_GUEST_* settings above.
    while start > 0 and re.match(r"\s*(#|RDD_GUEST_\w*=)", lines[start - 1]):
        start -= 1
    opening = max((i for i in range(start) if re.match(r"(if|fi)\b", lines[i])), default=None)
    if opening is None or lines[opening] != "if [[ ${kiwi_profiles:-} =~ wsl ]]; then":
        fail("the rdd-guest lines are not inside the wsl branch's `if`")
    closing = next((i for i in range(end, len(lines)) if lines[i] == "fi"), None)
    removal = [i for i, l in enumerate(lines) if l.strip() == "rm -rf /build/"]
    if closing is None or len(removal) != 1 or removal[0] < closing:
        fail("rm -rf /build/ is not (once) after the wsl branch that installs rdd-guest")
    preamble = next((i for i, l in enumerate(lines) if l.strip() == "set -o errexit"), None)
    if preamble is None or preamble > start:
        fail("no set -o errexit before the rdd-guest lines")
    out = lines[: preamble + 1]
    out += ["", "# ... (config.sh lines that concern other things) ...", lines[opening]]
    out += lines[start : end + 1]
    out += ["    # ... (the rest of the wsl branch) ...", "fi", "", lines[removal[0]]]
    print("\n".join(out))


def stage(tree):
    with open(os.path.join(tree, "Dockerfile")) as f:
        lines = f.read().splitlines()
    on, runs, cur = False, [], None
    for l in lines:
        if l.startswith("FROM "):
            on = l.endswith(" AS rdd-guest")
            continue
        if not on:
            continue
        if cur is None and l.startswith("RUN "):
            cur = []
        if cur is not None:
            cur.append(l[:-1] if l.endswith("\\") else l)
            if not l.endswith("\\"):
                runs.append("".join(cur))
                cur = None
    builds = [r for r in runs if "rpmbuild" in r]
    if len(builds) != 1:
        fail(f"{len(builds)} RUN lines with rpmbuild in the rdd-guest stage, want 1")
    cmd = re.sub(r"^RUN\s+", "", builds[0])
    while cmd.startswith("--"):
        cmd = cmd.split(None, 1)[1]
    print(cmd)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("config", "stage"):
        fail(__doc__)
    {"config": config, "stage": stage}[sys.argv[1]](sys.argv[2])
