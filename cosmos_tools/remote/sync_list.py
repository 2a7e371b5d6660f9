"""Run on the GPU box as ``python3 -c TEXT FOLDER``: every regular file under FOLDER.

Prints "<size> <path relative to FOLDER>\\0" per file (temporary ``*.cosmos-part`` files excluded);
exit 88 (codes.py NOT_A_FOLDER) if FOLDER is not a folder.
"""

import os
import stat
import sys

top = sys.argv[1]
if not os.path.isdir(top):
    sys.exit(88)
for folder, _dirs, names in os.walk(top):
    for name in names:
        path = os.path.join(folder, name)
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode) and not name.endswith(".cosmos-part"):
            sys.stdout.buffer.write(b"%d " % info.st_size + os.fsencode(os.path.relpath(path, top)) + b"\0")
