"""Run on the GPU box as ``python3 -c TEXT PART TARGET [PART TARGET ...]``, with one line "<size> <sha256>" per
pair on stdin: check each uploaded temporary file and put it in place.

The client starts this before the last piece of the upload lands and writes the expected digests once every
piece is acknowledged, so checking all files costs one round trip. For each pair: hash PART; when it has that
size and sha256, rename it over TARGET and print "ok", otherwise leave it and print "<size> <sha256>" of what is
there ("-" if it is missing or unreadable). Fewer lines than pairs on stdin (the upload was abandoned): nothing is
checked, renamed or printed.
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
expected = sys.stdin.read().splitlines()  # read to the end: the command must not end before the client's EOF
pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
if len(expected) < len(pairs):
    sys.exit(0)
lines = []
for i, (part, target) in enumerate(pairs):
    found = digest(part)
    if found == expected[i].strip():
        try:
            os.rename(part, target)
            found = "ok"
        except OSError as exc:
            found = "- " + (exc.strerror or "rename failed")
    lines.append(found)
sys.stdout.write("".join(line + "\n" for line in lines))
