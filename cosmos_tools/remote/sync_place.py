"""Run on the GPU box as ``python3 -c TEXT PART TARGET SIZE SHA256 [PART TARGET SIZE SHA256 ...]``: check each
uploaded temporary file and put it in place, in one round trip.

For each group: hash PART; when it has SIZE bytes with that SHA256, rename it over TARGET and print "ok",
otherwise leave it and print "<size> <sha256>" of what is there ("-" if it is missing or unreadable).
"""

import hashlib
import os
import sys


def digest(path):
    try:
        h, n = hashlib.sha256(), 0
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
                n += len(block)
        return str(n) + " " + h.hexdigest()
    except OSError:
        return "-"


args = sys.argv[1:]
lines = []
for i in range(0, len(args) - 3, 4):
    part, target, expected = args[i], args[i + 1], args[i + 2] + " " + args[i + 3]
    found = digest(part)
    if found == expected:
        try:
            os.rename(part, target)
            found = "ok"
        except OSError as exc:
            found = "- " + (exc.strerror or "rename failed")
    lines.append(found)
sys.stdout.write("".join(line + "\n" for line in lines))
