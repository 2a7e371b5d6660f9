"""Transfer benchmark on the rehearsal host: our SSH/SFTP transfers against scp and rsync, same machine, same run.

Starts a rehearsal host (real sshd on 127.0.0.1) in a temporary folder, makes one 200 MB file and a shot of
three 30 MiB files, and measures, best of --repeat runs (ours and the reference alternate, so load hits both):
  - upload and download of the big file and of the shot, ours against `scp` (both including the connection);
  - an unchanged re-upload of the shot, ours against `rsync -a` over ssh (both including the connection);
  - the SSH connections one full cycle opens (cosmos_tools.cycle on the rehearsal host).
Prints a table and the ratios. Targets: throughput >= 1.0 of scp's; unchanged re-upload <= 0.5 of rsync's time.

``--long-link`` instead puts a delay line (bench/delay_line.py, a process of its own) between the client and
sshd and measures upload and download of a 40 MB file (``--size``) at 0, 50 and 100 ms round trips, ours against
`scp` through the same delay line (both including the connection). Target: >= 3.0 x scp at 100 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cosmos_tools import sync, transport
from cosmos_tools.config import load_config
from cosmos_tools.digests import SETTLED_SECONDS
from cosmos_tools.rehearsal import host

MB = 1_000_000


def make_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for _ in range(size // MB):
            handle.write(os.urandom(MB))
        handle.write(os.urandom(size % MB))
    return path


def duel(repeat: int, prepare, ours, reference) -> tuple[float, float]:
    """Best times of ``ours`` and ``reference``, run alternately (each after ``prepare``) so load hits both."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for side, measure in enumerate((ours, reference)):
            prepare()
            start = time.perf_counter()
            measure()
            times[side].append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def clear(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


class Bench:
    def __init__(self, work: Path, repeat: int) -> None:
        self.repeat = repeat
        self.info = host.up(work / "host", seconds=0.2)
        self.root = work / "project"
        for sub in ("inputs/videos", "inputs/prompts", "outputs", "notes"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.environ.update(COSMOS_PROJECT_ROOT=str(self.root), COSMOS_CONFIG=str(self.info.config))
        self.cfg = load_config(self.root)
        self.remote = self.info.remote_dir
        self.ssh_opts = ["-F", "/dev/null", "-i", str(self.info.client_key), "-o", "IdentitiesOnly=yes",
                         "-o", f"UserKnownHostsFile={self.info.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                         "-o", "BatchMode=yes"]
        self.dest = f"{self.info.user}@127.0.0.1"
        self.rows: list[tuple[str, float, str, float, float, str]] = []
        self.port = self.info.port

    def scp(self, *args: str) -> None:
        subprocess.run(["scp", "-q", "-P", str(self.port), *self.ssh_opts, *args], check=True)

    def add(self, what: str, ours: float, ref_name: str, ref: float, size: int, goal: str) -> None:
        self.rows.append((what, ours, ref_name, ref, size, goal))

    @contextlib.contextmanager
    def delay_line(self, delay: float):
        """Route our connections and scp's through a delay line holding every byte ``delay`` s each way."""
        relay = subprocess.Popen([sys.executable, str(Path(__file__).with_name("delay_line.py")), str(self.info.port),
                                  str(delay)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            port = int(relay.stdout.readline())
            known = self.root.parent / f"known_hosts_{port}"
            known.write_text(f"[127.0.0.1]:{port} " + self.info.known_hosts.read_text().split(" ", 1)[1])
            saved = self.cfg, self.port, list(self.ssh_opts)
            os.environ.update(REMOTE_PORT=str(port), KNOWN_HOSTS=str(known))
            self.cfg, self.port = load_config(self.root), port
            self.ssh_opts[self.ssh_opts.index(f"UserKnownHostsFile={self.info.known_hosts}")] = \
                f"UserKnownHostsFile={known}"
            yield
        finally:
            relay.stdin.close()
            relay.wait(10)
            for name in ("REMOTE_PORT", "KNOWN_HOSTS"):
                os.environ.pop(name, None)
            self.cfg, self.port, self.ssh_opts = saved

    def long_link(self, big: Path) -> None:
        label = f"{big.stat().st_size / MB:.0f} MB"
        rel = "inputs/videos/bench/long.bin"
        remote = self.remote / rel
        back = Path(tempfile.mkdtemp(prefix="down-", dir=self.root))
        size = big.stat().st_size
        for rtt in (0, 50, 100):
            goal = ">= 3.0 x" if rtt == 100 else "(info)"
            with self.delay_line(rtt / 2000):
                def upload():
                    with transport.connect(self.cfg) as t:
                        sync.upload_files(t, [(big, rel)], progress=False)

                def download():
                    with transport.connect(self.cfg) as t:
                        sync.download_tree(t, posixpath.dirname(rel), back, progress=False)

                up, scp_up = duel(self.repeat, lambda: clear(remote), upload,
                                  lambda: self.scp(str(big), f"{self.dest}:{remote}"))
                self.add(f"upload {label}, {rtt} ms round trip", up, "scp", scp_up, size, goal)
                down, scp_down = duel(self.repeat, lambda: (clear(back), back.mkdir()), download,
                                      lambda: self.scp(f"{self.dest}:{remote}", str(back / "long.bin")))
                self.add(f"download {label}, {rtt} ms round trip", down, "scp", scp_down, size, goal)

    def transfers(self, big: Path, shot: Path) -> None:
        rel_big = "inputs/videos/bench/big.bin"
        remote_big = self.remote / rel_big
        shot_files = [(p, f"inputs/videos/shot/{p.name}") for p in sorted(shot.iterdir())]
        shot_size = sum(p.stat().st_size for p, _ in shot_files)

        def ours_upload(files):
            with transport.connect(self.cfg) as t:
                sync.upload_files(t, files, progress=False)

        def ours_download(rel, local):
            with transport.connect(self.cfg) as t:
                sync.download_tree(t, rel, local, progress=False)

        up, scp_up = duel(self.repeat, lambda: clear(remote_big), lambda: ours_upload([(big, rel_big)]),
                          lambda: self.scp(str(big), f"{self.dest}:{remote_big}"))
        self.add("upload 200 MB file", up, "scp", scp_up, big.stat().st_size, ">= 1.0 x")

        back = Path(tempfile.mkdtemp(prefix="down-", dir=self.root))
        down, scp_down = duel(self.repeat, lambda: (clear(back), back.mkdir()),
                              lambda: ours_download("inputs/videos/bench", back),
                              lambda: self.scp(f"{self.dest}:{remote_big}", str(back / "big.bin")))
        self.add("download 200 MB file", down, "scp", scp_down, big.stat().st_size, ">= 1.0 x")

        remote_shot = self.remote / "inputs/videos/shot"
        shot_up, scp_shot = duel(self.repeat, lambda: clear(remote_shot), lambda: ours_upload(shot_files),
                                 lambda: self.scp("-r", str(shot), f"{self.dest}:{remote_shot}"))
        self.add("upload shot (3 x 30 MiB)", shot_up, "scp -r", scp_shot, shot_size, ">= 1.0 x")

        ours_upload(shot_files)
        rsync_ssh = " ".join(["ssh", "-p", str(self.info.port), *self.ssh_opts])
        rsync = ["rsync", "-a", "-e", rsync_ssh, f"{shot}/", f"{self.dest}:{remote_shot}/"]
        subprocess.run(rsync, check=True)  # rsync compares mtimes: one run makes its re-uploads true no-ops too
        # That run set the box's files' mtimes (their ctimes moved): both sides trust a recorded digest only once a
        # file has not changed for SETTLED_SECONDS, as a re-upload minutes later would find it. Before that, each
        # side hashes the shot (about rsync's time under load).
        time.sleep(SETTLED_SECONDS + 0.5)
        again, rsync_again = duel(self.repeat, lambda: None, lambda: ours_upload(shot_files),
                                  lambda: subprocess.run(rsync, check=True))
        self.add("unchanged re-upload of the shot", again, "rsync -a", rsync_again, 0, "<= 0.5 x time")
        with transport.connect(self.cfg) as t:
            open_again, rsync_again = duel(self.repeat, lambda: None,
                                           lambda: sync.upload_files(t, shot_files, progress=False),
                                           lambda: subprocess.run(rsync, check=True))
        self.add("  same, on an open connection", open_again, "rsync -a", rsync_again, 0, "(info)")

    def cycle_connections(self) -> str:
        from cosmos_tools import cycle
        from cosmos_tools.convert.shot import ConvertOptions, convert_shot
        from cosmos_tools.demo import make_render
        from cosmos_tools.prompts import new_prompt

        render = make_render(self.cfg.root / "art" / "bench_render", frames=24)
        convert_shot(render, "bench_shot", self.cfg.local_path("LOCAL_VIDEOS_DIR"), ConvertOptions(progress=False),
                     notify=lambda message: None)
        prompt = new_prompt(self.cfg, "bench", "a quiet street at dusk", shot="bench_shot")
        before = transport.CONNECTIONS_OPENED
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = cycle.run_cycle(self.cfg, prompt, upscale=True, echo=lambda data: None)
        opened = transport.CONNECTIONS_OPENED - before
        return f"{opened} (full cycle with upscale, exit {code})"

    def report(self, connections: str) -> None:
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\ntransfer benchmark: rehearsal host 127.0.0.1:{self.info.port}, best of {self.repeat}, "
              f"every figure includes opening the SSH connection unless noted; load average {load} (1/5/15 min)")
        print(f"{'what':<34} {'ours':>16} {'reference':>22} {'ratio':>7}  target")
        for what, ours, ref_name, ref, size, goal in self.rows:
            if size:
                ratio = ref / ours  # throughput ratio: ours / reference
                ours_txt = f"{size / MB / ours:8.1f} MB/s"
                ref_txt = f"{ref_name} {size / MB / ref:6.1f} MB/s"
            else:
                ratio = ours / ref  # time ratio: ours / reference
                ours_txt = f"{ours * 1000:8.0f} ms"
                ref_txt = f"{ref_name} {ref * 1000:6.0f} ms"
            wanted = float(goal.split()[1]) if goal != "(info)" else 0.0
            ok = "" if goal == "(info)" else ("ok" if (ratio >= wanted if size else ratio <= wanted) else "MISSED")
            print(f"{what:<34} {ours_txt:>16} {ref_txt:>22} {ratio:7.2f}  {goal} {ok}")
        if connections:
            print(f"SSH connections opened by one full cycle: {connections}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (best is kept)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--long-link", action="store_true",
                        help="a file up and down through a delay line at 0, 50 and 100 ms round trips, against scp")
    parser.add_argument("--size", type=int, default=40, help="--long-link: the file's size in MB (default 40)")
    args = parser.parse_args()
    for tool in ("scp", "ssh") if args.long_link else ("scp", "rsync", "ssh"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed; the benchmark compares against it", file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="cosmos-bench-"))
    bench = None
    try:
        bench = Bench(work, args.repeat)
        data = work / "data"
        if args.long_link:
            bench.long_link(make_file(data / "long.bin", args.size * MB))
            bench.report("")
            return 0
        big = make_file(data / "big.bin", 200 * MB)
        shot = data / "shot"
        for name in ("color.mp4", "depth.mp4", "segmentation.mp4"):
            make_file(shot / name, 30 * 1024 * 1024)
        bench.transfers(big, shot)
        connections = bench.cycle_connections()
        bench.report(connections)
    finally:
        host.down(work / "host")
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
