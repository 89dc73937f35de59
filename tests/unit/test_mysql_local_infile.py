"""LOCAL INFILE: a MySQL server may ask the client for any file, by name, in answer to any statement.

A hostile server (a pipeline names the host) must get no file from the worker: connections that never
send LOAD DATA do not offer the capability at all, and the writer's connection answers a request only
while its own LOAD DATA statement runs. Proved against a small MySQL server on loopback that asks for a
secret file in answer to `SELECT 1`, and records the capability flags and every byte the client sends.
"""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from osiris_drivers._mysql import connect, connection_params, infile_off
from osiris_drivers._mysql_send import infile_window

CLIENT_LOCAL_FILES = 0x80
SERVER_CAPABILITIES = 0xF7FF | (0x003F << 16)  # protocol 4.1, plugin auth, LOCAL_FILES; no SSL


class FakeMySQL:
    """Speaks just enough of the protocol: a handshake that accepts any password, OK to every statement,
    and a LOCAL INFILE request for `secret` in answer to `SELECT 1`."""

    def __init__(self, secret: str):
        self.secret = secret
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.client_flags: int | None = None
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(2)
        try:
            salt = b"abcdefgh" + b"ijklmnopqrst"
            handshake = (
                b"\x0a5.7.0-fake\x00"
                + struct.pack("<I", 7)
                + salt[:8]
                + b"\x00"
                + struct.pack("<H", SERVER_CAPABILITIES & 0xFFFF)
                + b"\x21"
                + struct.pack("<H", 2)
                + struct.pack("<H", SERVER_CAPABILITIES >> 16)
                + bytes([21])
                + b"\x00" * 10
                + salt[8:]
                + b"\x00"
                + b"mysql_native_password\x00"
            )
            self._send(conn, 0, handshake)
            seq, response = self._read(conn)
            self.client_flags = struct.unpack("<I", response[:4])[0]
            self._send(conn, seq + 1, b"\x00\x00\x00\x02\x00\x00\x00")
            while True:
                seq, packet = self._read(conn)
                if not packet or packet[0] == 0x01:  # COM_QUIT
                    return
                if packet[1:] == b"SELECT 1":
                    self._send(conn, seq + 1, b"\xfb" + self.secret.encode())
                    while True:  # the client answers with the file's packets and an empty one
                        last, data = self._read(conn)
                        if not data:
                            break
                        self.received += data
                    self._send(conn, last + 1, b"\x00\x00\x00\x02\x00\x00\x00")
                else:
                    self._send(conn, seq + 1, b"\x00\x00\x00\x02\x00\x00\x00")
        except (OSError, ConnectionError):
            return
        finally:
            conn.close()
            self.sock.close()

    @staticmethod
    def _send(conn, seq: int, payload: bytes) -> None:
        conn.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload)

    @staticmethod
    def _read(conn) -> tuple[int, bytes]:
        header = b""
        while len(header) < 4:
            chunk = conn.recv(4 - len(header))
            if not chunk:
                raise ConnectionError("closed")
            header += chunk
        length, seq = int.from_bytes(header[:3], "little"), header[3]
        payload = b""
        while len(payload) < length:
            chunk = conn.recv(length - len(payload))
            if not chunk:
                raise ConnectionError("closed")
            payload += chunk
        return seq, payload


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-RUNNER-TOKEN")
    return str(path)


def _params(port: int) -> dict:
    return connection_params({}, {"host": "127.0.0.1", "port": port, "user": "u", "database": "d"})


def test_a_reading_connection_does_not_offer_local_infile(secret):
    server = FakeMySQL(secret)
    conn = connect(_params(server.port))  # what the extractor and every probe use
    with pytest.raises(RuntimeError, match="local_infile"), conn.cursor() as cursor:
        cursor.execute("SELECT 1")
    server.thread.join(timeout=5)
    assert not server.client_flags & CLIENT_LOCAL_FILES
    assert b"TOP-SECRET" not in server.received


def test_the_writer_connection_answers_only_inside_its_load_statement(secret):
    server = FakeMySQL(secret)
    conn = connect(_params(server.port), local_infile=True, autocommit=False)
    infile_off(conn)  # as mysql.writer does right after connecting
    assert server.client_flags is not None and server.client_flags & CLIENT_LOCAL_FILES
    with pytest.raises(RuntimeError, match="local_infile"), conn.cursor() as cursor:
        cursor.execute("SELECT 1")  # any statement but our LOAD DATA: refused
    server.thread.join(timeout=5)
    assert b"TOP-SECRET" not in server.received


def test_inside_the_load_window_the_request_is_answered(secret):
    """The window is real: this is the one moment a request is served (the file LOAD DATA names)."""
    server = FakeMySQL(secret)
    conn = connect(_params(server.port), local_infile=True, autocommit=False)
    infile_off(conn)
    with infile_window(conn), conn.cursor() as cursor:
        cursor.execute("SELECT 1")
    conn.close()
    server.thread.join(timeout=5)
    assert b"TOP-SECRET" in server.received
