#!/usr/bin/env python3
"""A directory client written from shared/spec/registry.md alone, as the course's students
would write it: NUL-terminated strings, one TCP connection per operation, one result byte.

Usage: registry_client.py REGISTRY_HOST:PORT PEER_USER PEER_FILE EXPECTED_CONTENT_FILE

Drives every operation and result code against `meshfs registry`, then fetches PEER_FILE from
the meshfs node connected as PEER_USER with GET_FILE and compares it with the expected file.
Prints one line per check and a closing `N passed, N failed` line; exits 1 on any failure.
"""

import socket
import sys
import tempfile
import os

TIMEOUT = 10


def send_fields(sock, fields):
    for field in fields:
        sock.sendall(field.encode("utf-8") + b"\0")


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def read_string(sock):
    out = b""
    while True:
        c = sock.recv(1)
        if not c:
            raise ConnectionError("closed inside a string")
        if c == b"\0":
            return out.decode("utf-8")
        out += c
        if len(out) > 256:
            raise ValueError("string longer than 256 bytes")


def operation(addr, fields):
    """One operation: returns (code, sock) with the socket positioned after the code."""
    host, port = addr
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    send_fields(sock, fields)
    code = read_exact(sock, 1)[0]
    return code, sock


def simple(addr, fields):
    code, sock = operation(addr, fields)
    sock.close()
    return code


def list_users(addr, fields):
    code, sock = operation(addr, fields)
    users = []
    if code == 0:
        for _ in range(int(read_string(sock))):
            users.append((read_string(sock), read_string(sock), int(read_string(sock))))
    sock.close()
    return code, users


def list_content(addr, fields):
    code, sock = operation(addr, fields)
    files = []
    if code == 0:
        for _ in range(int(read_string(sock))):
            files.append(read_string(sock))
    sock.close()
    return code, files


def get_file(ip, port, remote, local):
    sock = socket.create_connection((ip, port), timeout=TIMEOUT)
    send_fields(sock, ["GET_FILE", remote])
    code = read_exact(sock, 1)[0]
    if code != 0:
        sock.close()
        return code
    size = int(read_string(sock))
    with open(local, "wb") as f:
        left = size
        while left > 0:
            chunk = sock.recv(min(65536, left))
            if not chunk:
                raise ConnectionError("peer closed with %d bytes missing" % left)
            f.write(chunk)
            left -= len(chunk)
    sock.close()
    return 0


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def eq(self, what, got, want):
        if got == want:
            self.passed += 1
            print("ok   %s" % what)
        else:
            self.failed += 1
            print("FAIL %s: got %r, want %r" % (what, got, want))


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    reg = (host, int(port))
    peer_user, peer_file, expected_path = sys.argv[2], sys.argv[3], sys.argv[4]
    with open(expected_path, "rb") as f:
        expected = f.read()
    c = Checks()

    # A listening socket for our own CONNECT, as the course's clients open one.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    my_port = str(listener.getsockname()[1])

    c.eq("REGISTER py", simple(reg, ["REGISTER", "py"]), 0)
    c.eq("REGISTER py again", simple(reg, ["REGISTER", "py"]), 1)
    c.eq("UNREGISTER ghost", simple(reg, ["UNREGISTER", "ghost"]), 1)
    c.eq("CONNECT ghost", simple(reg, ["CONNECT", "ghost", my_port]), 1)
    c.eq("PUBLISH before CONNECT", simple(reg, ["PUBLISH", "py", "/tmp/f1", "d"]), 2)
    c.eq("LIST_USERS before CONNECT", list_users(reg, ["LIST_USERS", "py"])[0], 2)
    c.eq("CONNECT py", simple(reg, ["CONNECT", "py", my_port]), 0)
    c.eq("CONNECT py again", simple(reg, ["CONNECT", "py", my_port]), 2)
    c.eq("PUBLISH f1", simple(reg, ["PUBLISH", "py", "/tmp/f1", "my first file"]), 0)
    c.eq("PUBLISH f1 again", simple(reg, ["PUBLISH", "py", "/tmp/f1", "again"]), 3)
    c.eq("PUBLISH ghost", simple(reg, ["PUBLISH", "ghost", "/tmp/f1", "d"]), 1)
    # The later variant of the course: a date string right after the operation name.
    c.eq("PUBLISH f2 with date",
         simple(reg, ["PUBLISH", "21/11/2026 12:00:00", "py", "/tmp/f2", "second"]), 0)
    c.eq("DELETE missing", simple(reg, ["DELETE", "py", "/tmp/none"]), 3)
    c.eq("DELETE f2", simple(reg, ["DELETE", "py", "/tmp/f2"]), 0)
    c.eq("DELETE ghost", simple(reg, ["DELETE", "ghost", "/tmp/f1"]), 1)

    code, users = list_users(reg, ["LIST_USERS", "py"])
    c.eq("LIST_USERS code", code, 0)
    names = [u[0] for u in users]
    c.eq("LIST_USERS has py and the peer", "py" in names and peer_user in names, True)
    c.eq("LIST_USERS py port", [u[2] for u in users if u[0] == "py"], [int(my_port)])
    c.eq("LIST_USERS ghost", list_users(reg, ["LIST_USERS", "ghost"])[0], 1)

    c.eq("LIST_CONTENT py", list_content(reg, ["LIST_CONTENT", "py", "py"]), (0, ["/tmp/f1"]))
    c.eq("LIST_CONTENT ghost target", list_content(reg, ["LIST_CONTENT", "py", "ghost"])[0], 3)
    c.eq("LIST_CONTENT as ghost", list_content(reg, ["LIST_CONTENT", "ghost", "py"])[0], 1)
    code, files = list_content(reg, ["LIST_CONTENT", "py", peer_user])
    c.eq("LIST_CONTENT peer code", code, 0)
    c.eq("peer publishes the file", peer_file in files, True)

    # GET_FILE from the meshfs peer, at the address the directory gives.
    ip, pport = [(u[1], u[2]) for u in users if u[0] == peer_user][0]
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "copy")
        c.eq("GET_FILE code", get_file(ip, pport, peer_file, local), 0)
        with open(local, "rb") as f:
            c.eq("GET_FILE content", f.read() == expected, True)
        c.eq("GET_FILE missing", get_file(ip, pport, "no-such-file", local + "2"), 1)
        c.eq("GET_FILE escape", get_file(ip, pport, "../../etc/passwd", local + "3"), 2)

    c.eq("DISCONNECT py", simple(reg, ["DISCONNECT", "py"]), 0)
    c.eq("DISCONNECT py again", simple(reg, ["DISCONNECT", "py"]), 2)
    c.eq("DISCONNECT ghost", simple(reg, ["DISCONNECT", "ghost"]), 1)
    c.eq("LIST_CONTENT after DISCONNECT", list_content(reg, ["LIST_CONTENT", "py", "py"])[0], 2)
    c.eq("UNREGISTER py", simple(reg, ["UNREGISTER", "py"]), 0)
    c.eq("UNREGISTER py again", simple(reg, ["UNREGISTER", "py"]), 1)
    listener.close()

    print("%d passed, %d failed" % (c.passed, c.failed))
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    main()
