"""An impostor on the LAN group: answers every browser's hello (port 0) with a forged hello,
as any host on the LAN can. Used by tests/trust.rs.

usage: forged_hello.py GROUP PORT IFACE JSON
"""
import json
import socket
import struct
import sys

group, port, iface, forged = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind((group, port))
mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(iface))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print("ready", flush=True)
while True:
    data, src = s.recvfrom(2048)
    try:
        m = json.loads(data)
    except ValueError:
        continue
    if isinstance(m, dict) and m.get("kind") == "hello" and m.get("port") == 0:
        s.sendto(forged.encode(), src)
        print("answered", src[1], flush=True)
