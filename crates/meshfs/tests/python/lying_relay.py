#!/usr/bin/env python3
"""A relay in front of a real meshfs node for the multi-source download tests (../multi_source.rs).

Every request goes to the node and every reply comes back unchanged (file-server protocol, in
clear), except:
- by default one byte of the file is changed in the data of `pread` replies. The byte is
  chosen in the fifth `pread` that passes (the middle of that range; a downloader running four
  requests at once sends a fifth only after one of its blocks was checked) and stays the same
  afterwards, so the relay behaves as a node whose copy has one byte changed mid-file while
  its `hash`/`blocks` still name the true file. `--honest` changes nothing.
- `--first-pread` changes the byte in the first `pread` instead (a node whose file changed
  right after it listed its blocks: its very first block does not match its own list).
- `--slow-hash SECONDS` holds every reply to `hash`, `hash-prefix` and `blocks` that long, as
  a node reading a big file from a slow card would, and prints `asked COMMAND` for each.
- `--hash-once HEX` answers the first `hash` request with `0 HEX` instead of the node's reply,
  and prints `lied hash`: a node whose file changed to another version between that `hash` and
  the download that follows (the cluster's conflict test, ../cluster_sync.rs).

The same goes for the data of `read` replies (a single-source download: `open`, `seek`,
then `read`s), whose offsets the relay follows per connection (there the first reply's data is
changed); when such a connection ends it prints how many `read` bytes it passed.

Usage: lying_relay.py HOST:PORT [--honest] [--first-pread] [--slow-hash SECONDS] [--hash-once HEX]
Prints `listening PORT` once ready, then `changed OFFSET` when the byte is chosen, and
`read BYTES` as each connection that passed `read` replies ends.
"""

import argparse
import socket
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("node")
parser.add_argument("--honest", action="store_true")
parser.add_argument("--slow-hash", type=float, default=0.0)
parser.add_argument("--first-pread", action="store_true")
parser.add_argument("--hash-once")
ARGS = parser.parse_args()
HOST, PORT = ARGS.node.rsplit(":", 1)
HASHING = (b"hash", b"hash-prefix", b"blocks")
# `pread`s let through unchanged before the one whose data is changed.
UNCHANGED_PREADS = 0 if ARGS.first_pread else 4
BODY_REPLIES = (b"stat", b"ls", b"help", b"status")
DATA_REPLIES = (b"pread", b"read", b"blocks")
lock = threading.Lock()
changed = [None]
preads = [0]
# The `--hash-once` lie, until told.
lie = [ARGS.hash_once]


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
            if command in HASHING and ARGS.slow_hash > 0:
                print(f"asked {command.decode()}", flush=True)
                time.sleep(ARGS.slow_hash)
            status = replies.readline()
            if not status:
                return
            if command == b"hash" and status.startswith(b"0 "):
                with lock:
                    told, lie[0] = lie[0], None
                if told is not None:
                    status = b"0 " + told.encode() + b"\n"
                    print("lied hash", flush=True)
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
                        preads[0] += command == b"pread"
                        due = command == b"read" or preads[0] > UNCHANGED_PREADS
                        if changed[0] is None and due and not ARGS.honest:
                            changed[0] = offset + n // 2
                            print(f"changed {changed[0]}", flush=True)
                        target = changed[0]
                    if target is not None and offset <= target < offset + n:
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
