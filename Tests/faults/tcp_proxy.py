"""A TCP proxy that can go silent: the network partition a firewall or a dead switch makes, with no FIN and no RST.

While paused it neither reads nor writes on any connection and accepts new ones without forwarding a byte, so both
ends see a peer that is there and says nothing; resumed, it forwards again. It runs on threads of the test process,
on loopback only.
"""

from __future__ import annotations

import selectors
import socket
import threading


class SilentProxy:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1") -> None:
        self.listen_port, self.target_port, self.host = listen_port, target_port, host
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._stopped = threading.Event()
        self._server = socket.create_server((host, listen_port), reuse_port=False)
        self._server.settimeout(0.2)
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "SilentProxy":
        self._start(self._accept_loop)
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        self._forwarding.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            for sock in self._sockets:
                sock.close()
        self._server.close()

    def pause(self) -> None:
        """From now on nothing passes in either direction, and nothing is closed."""
        self._forwarding.clear()

    def resume(self) -> None:
        self._forwarding.set()

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except (socket.timeout, OSError):
                continue
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            self._start(self._pump, client, upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            while not self._stopped.is_set():
                if not self._forwarding.wait(timeout=0.2):
                    continue  # silent: bytes stay in the kernel buffers, unread
                for key, _ in selector.select(timeout=0.2):
                    if not self._forwarding.is_set():
                        break
                    try:
                        data = key.fileobj.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        client.close()
                        upstream.close()
                        return
                    try:
                        peers[key.fileobj].sendall(data)
                    except BlockingIOError:
                        peers[key.fileobj].setblocking(True)
                        peers[key.fileobj].sendall(data)
                        peers[key.fileobj].setblocking(False)
                    except OSError:
                        client.close()
                        upstream.close()
                        return
