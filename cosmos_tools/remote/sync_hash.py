"""Run on the GPU box as ``python3 -c TEXT STALE FOLDERS PATH...``: the size and sha256 of each path.

argv[1]: remove temporary upload files (``.<name>.*.cosmos-part``) of these paths left untouched for that
many seconds (0: none); argv[2]: "1" makes each path's folder first (an upload's targets: no separate
``mkdir -p`` round trip), "0" does not; then one line per further argument, in order: "<size> <sha256>",
or "-" where there is no regular file. Python's hashlib uses the CPU's SHA extensions, 3-4x faster than
sha256sum. A folder that cannot be made is one line on stderr and exit 1.
"""

import hashlib
import os
import stat
import sys
import time


def digest(path):
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return "-"
        h, n = hashlib.sha256(), 0
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
                n += len(block)
        return str(n) + " " + h.hexdigest()
    except OSError:
        return "-"


stale, folders, paths = float(sys.argv[1]), sys.argv[2] == "1", sys.argv[3:]
for folder in sorted({os.path.dirname(p) for p in paths}) if folders else ():
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        sys.exit("cannot create folder " + folder + ": " + (exc.strerror or str(exc)))
for p in paths if stale else ():
    folder, name = os.path.split(p)
    try:
        entries = os.listdir(folder or ".")
    except OSError:
        continue
    for entry in entries:
        if entry.startswith("." + name + ".") and entry.endswith(".cosmos-part"):
            part = os.path.join(folder, entry)
            try:
                if time.time() - os.lstat(part).st_mtime > stale:
                    os.unlink(part)
            except OSError:
                pass
sys.stdout.write("".join(digest(p) + "\n" for p in paths))
