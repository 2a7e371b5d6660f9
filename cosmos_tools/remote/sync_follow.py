"""Run on the GPU box as ``python3 -c TEXT PATH SIZE IDLE``: hash a file while it is being uploaded.

Reads up to SIZE bytes of PATH as they land, printing "+<bytes landed so far>" at most ten times a second
(the client's progress bar shows what the box has, not what was handed to SSH), then "<size> <sha256>";
gives up (exit 89, codes.py STALLED) when the file stops growing for IDLE seconds.
"""

import hashlib
import sys
import time

path, size, idle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
h, n, f, last, shown = hashlib.sha256(), 0, None, time.monotonic(), 0.0
view = memoryview(bytearray(1 << 20))  # one buffer: a new 1 MiB bytes per read, mostly read short, was mapped anew
while n < size:
    if f is None:
        try:
            f = open(path, "rb", buffering=0)  # kept open while the file grows
        except FileNotFoundError:
            pass
    got = f.readinto(view[:min(len(view), size - n)]) if f else 0
    if got:
        h.update(view[:got])
        n += got
        last = time.monotonic()
        if last - shown >= 0.1:
            print("+" + str(n), flush=True)
            shown = last
    elif time.monotonic() - last > idle:
        sys.exit(89)
    else:
        time.sleep(0.002)
print(n, h.hexdigest())
