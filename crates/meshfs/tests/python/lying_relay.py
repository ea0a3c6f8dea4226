#!/usr/bin/env python3
"""A lying source for the multi-source download tests (../multi_source.rs).

A TCP relay in front of a real meshfs node (file-server protocol, in clear): every request
goes to the node and every reply comes back unchanged, except that one byte of the file is
changed in the data of `pread` replies. The byte is chosen the first time a `pread` passes
(the middle of that range) and stays the same afterwards, so the relay behaves as a node whose
copy has one byte changed while its `hash`/`hash-prefix` still name the true file.

The same goes for the data of `read` replies (a single-source download: `open`, `seek`,
then `read`s), whose offsets the relay follows per connection; when such a connection ends
it prints how many `read` bytes it passed.

Usage: lying_relay.py HOST:PORT
Prints `listening PORT` once ready, then `changed OFFSET` when the byte is chosen, and
`read BYTES` as each connection that passed `read` replies ends.
"""

import socket
import sys
import threading

HOST, PORT = sys.argv[1].rsplit(":", 1)
BODY_REPLIES = (b"stat", b"ls", b"help", b"status")
DATA_REPLIES = (b"pread", b"read", b"blocks")
lock = threading.Lock()
changed = [None]


def relay(client):
    upstream = socket.create_connection((HOST, int(PORT)))
    requests = client.makefile("rb")
    replies = upstream.makefile("rb")
    # Where the next `read` starts, and the `read` bytes passed.
    position, read_bytes = 0, 0
    try:
        while True:
            request = requests.readline()
            if not request:
                return
            upstream.sendall(request)
            words = request.split()
            command = words[0].lower() if words else b""
            status = replies.readline()
            if not status:
                return
            out = bytearray(status)
            if command == b"open" and status.startswith(b"0"):
                position = 0
            elif command == b"seek" and status.startswith(b"0"):
                position = int(words[1])
            if command in DATA_REPLIES and status.startswith(b"0 "):
                n = int(status.split()[1])
                data = bytearray(replies.read(n))
                if command in (b"pread", b"read") and n > 0:
                    if command == b"pread":
                        offset = int(words[1])
                    else:
                        offset, position = position, position + n
                        read_bytes += n
                    with lock:
                        if changed[0] is None:
                            changed[0] = offset + n // 2
                            print(f"changed {changed[0]}", flush=True)
                        target = changed[0]
                    if offset <= target < offset + n:
                        data[target - offset] ^= 0x01
                out += data
            elif command in BODY_REPLIES and status.startswith(b"0"):
                while True:
                    line = replies.readline()
                    out += line
                    if line in (b"\n", b""):
                        break
            client.sendall(out)
            if command == b"quit":
                return
    except OSError:
        return
    finally:
        if read_bytes:
            print(f"read {read_bytes}", flush=True)
        client.close()
        upstream.close()


def main():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    print(f"listening {server.getsockname()[1]}", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=relay, args=(client,), daemon=True).start()


main()
