"""The rehearsal GPU host: a real sshd on 127.0.0.1 with stand-in docker, torchrun and transfer.py."""

from .host import HostInfo, down, status, up

__all__ = ["HostInfo", "down", "status", "up"]
