"""A plain multicast chat receiver, as the seed 004 ChatServer.py describes: join GROUP on PORT
through interface IFACE and print every datagram as `<ip> :> <text>`. Prints `ready` once
joined. Usage: group_chat_recv.py GROUP PORT IFACE"""
import socket
import struct
import sys

group, port, iface = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(iface))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print("ready", flush=True)
while True:
    data, (ip, _) = s.recvfrom(2048)
    print(f"{ip} :> {data.decode('utf-8', 'replace')}", flush=True)
