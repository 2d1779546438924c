#!/usr/bin/env python3
"""Asks a Kafka-protocol broker for its API versions; exit 0 only if it answers correctly.

A listening port is not enough: the broker must speak the protocol. Used by scripts/services.sh.
"""
import socket
import struct
import sys


def probe(host: str, port: int) -> bool:
    client_id = b"nimbus-probe"
    correlation_id = 0x4E42
    # ApiVersions (key 18) v0: header = api_key, api_version, correlation_id, client_id.
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.settimeout(2)
            s.sendall(struct.pack(">i", len(body)) + body)
            header = s.recv(4, socket.MSG_WAITALL)
            if len(header) < 4:
                return False
            (size,) = struct.unpack(">i", header)
            reply = b""
            while len(reply) < min(size, 6):
                chunk = s.recv(size - len(reply))
                if not chunk:
                    return False
                reply += chunk
            got_id, error_code = struct.unpack(">ih", reply[:6])
            return got_id == correlation_id and error_code == 0
    except OSError:
        return False


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 9092
    sys.exit(0 if probe(host, port) else 1)
