"""Serving with uvicorn, optionally on a socket shared with other gateway processes.

``reuse_port``: the listening socket is bound with ``SO_REUSEPORT`` (Linux, the BSDs,
macOS), so several independent ``orchestra gateway`` processes (one per container or
systemd unit, each with its own ``--workers``) listen on the same address and the kernel
spreads new connections between them. uvicorn takes the pre-bound socket.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from orchestra.errors import ConfigError

STARTUP_FAILURE = 3
"""uvicorn's exit status when the server did not start."""


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` with ``SO_REUSEPORT``, inheritable by
    uvicorn's worker processes; raises :class:`ConfigError` where the option is missing
    or the address is taken by a process that did not set it."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError(
            "SO_REUSEPORT is not available on this system",
            hint="put a load balancer in front of the replicas instead (docs/gateway.md)",
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} with SO_REUSEPORT: {exc}",
            hint="every process sharing the port must be started with --reuse-port, "
            "by the same user",
        ) from exc
    sock.set_inheritable(True)
    return sock


def run_server(
    target: str,
    *,
    host: str,
    port: int,
    workers: int,
    reuse_port: bool,
    **options: Any,
) -> None:
    """``uvicorn.run(target, ...)``; with ``reuse_port``, on a ``SO_REUSEPORT`` socket."""
    import uvicorn

    if not reuse_port:
        uvicorn.run(target, host=host, port=port, workers=workers, **options)
        return
    sock = reuse_port_socket(host, port)
    config = uvicorn.Config(target, host=host, port=port, workers=workers, **options)
    server = uvicorn.Server(config)
    try:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
            return
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
