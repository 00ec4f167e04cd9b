"""``--reuse-port``: sockets that share one address with other gateway processes."""

from __future__ import annotations

import socket

import pytest

from orchestra.errors import ConfigError
from orchestra.server.listen import reuse_port_socket


def test_reuse_port_sockets_share_an_address_that_a_plain_socket_cannot_take() -> None:
    first = reuse_port_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = reuse_port_socket("127.0.0.1", port)
    plain = socket.socket()
    try:
        assert second.getsockname() == first.getsockname()
        assert first.get_inheritable() and second.get_inheritable()  # for uvicorn's workers
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    finally:
        for sock in (first, second, plain):
            sock.close()


def test_a_port_taken_without_the_option_is_a_clear_error() -> None:
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen()
    try:
        with pytest.raises(ConfigError, match="--reuse-port") as caught:
            reuse_port_socket("127.0.0.1", plain.getsockname()[1])
    finally:
        plain.close()
    assert "cannot listen on 127.0.0.1" in caught.value.message
