"""Run on the GPU box as ``python3 -c TEXT PATH CHUNK START END [START END ...]``: what an upload sent in pieces
left in PATH.

For each piece (bytes START to END), the data written from START on without a gap, found with SEEK_HOLE and
cut down to whole CHUNKs unless it reaches END: one line "<length> <sha256 of those bytes>", or "0 -" when
there is none (or PATH is gone). A filesystem without holes reports whole pieces; their hashes then differ
from the client's and the pieces are sent again.
"""

import hashlib
import os
import sys

path, chunk, bounds = sys.argv[1], int(sys.argv[2]), [int(n) for n in sys.argv[3:]]
try:
    fd = os.open(path, os.O_RDONLY)
except OSError:  # PATH is gone: nothing of any piece is there
    sys.stdout.write("0 -\n" * (len(bounds) // 2))
    sys.exit(0)
lines = []
for i in range(0, len(bounds) - 1, 2):
    start, end = bounds[i], bounds[i + 1]
    try:
        hole = os.lseek(fd, start, os.SEEK_HOLE)
    except OSError:  # start is at or past the end of the file
        hole = start
    length = end - start if hole >= end else (hole - start) // chunk * chunk
    if length <= 0:
        lines.append("0 -")
        continue
    h, left = hashlib.sha256(), length
    os.lseek(fd, start, os.SEEK_SET)
    while left > 0:
        block = os.read(fd, min(1 << 20, left))
        if not block:
            break
        h.update(block)
        left -= len(block)
    lines.append(str(length - left) + " " + h.hexdigest())
sys.stdout.write("".join(line + "\n" for line in lines))
