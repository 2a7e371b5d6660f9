"""Run on the GPU box as ``python3 -c TEXT PART TARGET [PART TARGET ...]`` while an upload in pieces fills each PART:
check each one against the client's digest and put it in place, answering as soon as it can.

stdin: one line "<size> <sha256>" per pair (the client sends them once it has hashed its files), then "acked"
once the box has acknowledged every write, then EOF. Until "acked" comes, a part is checked as soon as it holds
its size without a hole (SEEK_HOLE): for a fresh part that means every piece landed, so the answer is ready when
the last write lands instead of a round trip later. A part that does not match then (a resumed part still holds
old bytes where new ones are coming; a filesystem without holes looks full early) is checked again after
"acked". A matching part is renamed over TARGET: "<index> ok"; otherwise "<index> <size> <sha256>" of what is
there ("-" if it is missing), unless TARGET already holds those bytes (an earlier attempt's check placed it):
then "ok" too. EOF before "acked" (the upload was abandoned): nothing more is checked or renamed.
"""

import hashlib
import os
import select
import sys

POLL = 0.005


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


def complete(path, size):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size != size:
            return False
        return size == 0 or os.lseek(fd, 0, os.SEEK_HOLE) >= size
    except OSError:
        return False
    finally:
        os.close(fd)


def place(index, wanted, final):
    """Rename the part when it matches and answer; False when it does not match yet and this is not the final try."""
    part, target = pairs[index]
    found = digest(part)
    if found == wanted:
        try:
            os.rename(part, target)
            found = "ok"
        except OSError as exc:
            found = "- " + (exc.strerror or "rename failed")
    elif not final:
        return False
    elif found == "-" and digest(target) == wanted:
        found = "ok"
    sys.stdout.write(str(index) + " " + found + "\n")
    sys.stdout.flush()
    return True


args = sys.argv[1:]
pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
received, lines = b"", []
while True:
    block = os.read(0, 65536)
    if not block:
        sys.exit(0)  # abandoned
    received += block
    *lines, rest = received.split(b"\n")
    if len(lines) >= len(pairs):
        break
expected = [line.decode().strip() for line in lines[:len(pairs)]]
tail = b"\n".join(lines[len(pairs):] + [rest])
waiting = list(range(len(pairs)))
tried = set()
while waiting and not tail and not select.select([0], [], [], POLL)[0]:
    for i in waiting:
        if i not in tried and complete(pairs[i][0], int(expected[i].split()[0])):
            tried.add(i)
            if place(i, expected[i], final=False):
                waiting.remove(i)
                break
while b"\n" not in tail:
    block = os.read(0, 65536)
    if not block:
        sys.exit(0)  # abandoned before every write was acknowledged
    tail += block
if tail.split(b"\n")[0].strip() == b"acked":
    for i in waiting:
        place(i, expected[i], final=True)
while os.read(0, 65536):  # to the end: the command must not end before the client's EOF
    pass
