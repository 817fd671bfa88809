#!/usr/bin/env python3
"""Drives the tcp_echo example with real client sockets: many connections,
each echoed byte for byte, then a clean shutdown on SIGINT."""
import os
import random
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, deadline):
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def main():
    binary = sys.argv[1]
    port = free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--cores", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(port, time.time() + 10), "server did not start"
        rng = random.Random(7)
        conns = []
        for i in range(200):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            payload = rng.randbytes(1 + i * 97)
            c.sendall(payload)
            conns.append((c, payload))
        for c, payload in conns:
            got = b""
            while len(got) < len(payload):
                chunk = c.recv(65536)
                assert chunk, "connection closed early"
                got += chunk
            assert got == payload, "echo mismatch"
            c.close()
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=20)
    assert "tcp echo server on 127.0.0.1:%d" % port in out, out
    assert server.returncode == 0, (server.returncode, err)
    print("tcp_echo: 200 connections echoed byte for byte; clean shutdown")


if __name__ == "__main__":
    main()
