"""A node of a future meshfs whose file-server protocol this one cannot talk: it announces
itself on the LAN group with `proto` 99 and answers `hello` and `status` on TCP in clear.
Used by tests/fleet.rs (issue 21, item 4).

usage: future_node.py GROUP PORT IFACE NAME
prints `ready TCP_PORT` once both sockets are open.
"""
import json
import socket
import sys
import threading

from lan_peer import answer_browsers, join

group, port, iface, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
VERSION, PROTO = "9.9.9", 99

tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.bind(("127.0.0.1", 0))
tcp.listen(8)
tcp_port = tcp.getsockname()[1]
hello = json.dumps({"v": 1, "kind": "hello", "node": name, "id": "future-1",
                    "port": tcp_port, "meshfs": VERSION, "proto": PROTO}).encode()


def serve(conn):
    with conn, conn.makefile("rwb") as f:
        for line in f:
            req = line.strip().decode(errors="replace")
            if req == "hello":
                f.write(f"0 meshfs {VERSION} node={name} proto={PROTO}\n".encode())
            elif req == "status":
                f.write(f"0 OK\nname: {name}\nversion: {VERSION}\nproto: {PROTO}\n"
                        "uptime: 5\nconnections: 1\nevents: 0\n\n".encode())
            else:
                f.write(b"5 unknown request\n")
            f.flush()


def accept():
    while True:
        conn, _ = tcp.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


threading.Thread(target=accept, daemon=True).start()

udp = join(group, port, iface)
# Announce three times, as a node does over time: the node under test must log it once.
for _ in range(3):
    udp.sendto(hello, (group, port))
print("ready", tcp_port, flush=True)
# A browser (`meshfs status`, `peers`) asks the group: answer it as nodes do.
answer_browsers(udp, hello)
