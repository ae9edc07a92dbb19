#!/usr/bin/env python3
"""tests/packaging/check_dist.py TARBALL TREE: is TARBALL what `make dist`
promises for TREE? Exactly MANIFEST's files (and their directories) under
rdd-guest-VERSION/, in sorted order, each with the tree's bytes; owner and
group 0 with no names; mtime MANIFEST's "# date:"; mode 0755 for directories
and files whose owner may execute them, 0644 for the rest; a gzip header
with no file name and no time stamp. Prints what is wrong; exit 1 if any."""
import datetime
import os
import stat
import sys
import tarfile

tarball, tree = sys.argv[1], sys.argv[2]
errors = []
with open(os.path.join(tree, "VERSION")) as f:
    top = "rdd-guest-" + f.read().strip()
with open(os.path.join(tree, "MANIFEST")) as f:
    lines = f.read().splitlines()
files = [l for l in lines if l.strip() and not l.startswith("#")]
date = [l.split(":", 1)[1].strip() for l in lines if l.startswith("# date:")][0]
epoch = int(datetime.datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp())

with open(tarball, "rb") as f:
    head = f.read(10)
if head[:3] != b"\x1f\x8b\x08":
    errors.append("not a gzip stream")
if head[3] != 0:
    errors.append(f"gzip header flags {head[3]:#x}: a name or comment is stored")
if head[4:8] != b"\0\0\0\0":
    errors.append("gzip header carries a time stamp")

want = {top}
for p in files:
    parts = p.split("/")
    for i in range(1, len(parts)):
        want.add("/".join([top] + parts[:i]))
    want.add(f"{top}/{p}")

with tarfile.open(tarball, "r:gz") as tf:
    members = tf.getmembers()
    names = [m.name for m in members]
    if names != sorted(names):
        errors.append("entries are not in sorted order")
    if set(names) != want:
        errors.append(f"extra entries: {sorted(set(names) - want)[:5]}; "
                      f"missing: {sorted(want - set(names))[:5]}")
    for m in members:
        if (m.uid, m.gid, m.uname, m.gname) != (0, 0, "", ""):
            errors.append(f"{m.name}: owner {m.uid}/{m.gid} {m.uname!r}/{m.gname!r}")
        if m.mtime != epoch:
            errors.append(f"{m.name}: mtime {m.mtime}, want {epoch} ({date})")
        if m.isdir():
            if m.mode != 0o755:
                errors.append(f"{m.name}: directory mode {m.mode:o}")
            continue
        if not m.isfile():
            errors.append(f"{m.name}: neither a file nor a directory")
            continue
        path = os.path.join(tree, m.name[len(top) + 1:])
        st = os.stat(path)
        mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
        if m.mode != mode:
            errors.append(f"{m.name}: mode {m.mode:o}, want {mode:o}")
        with open(path, "rb") as f:
            if tf.extractfile(m).read() != f.read():
                errors.append(f"{m.name}: bytes differ from the tree's")

for e in errors[:20]:
    print(e)
print(f"{len(names)} entries, {len(files)} files, mtime {date}, {len(errors)} problems")
sys.exit(1 if errors else 0)
