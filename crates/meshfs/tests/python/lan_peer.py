"""What the Python stand-ins for other nodes on a LAN group share (`forged_hello.py`,
`future_node.py`): joining the group on loopback, and answering every browser's `hello`
(port 0) with a `hello` of their own, as nodes do. Imported, not run."""
import json
import socket
import struct


def join(group, port, iface):
    """A UDP socket bound to the group's port and joined to it through `iface`, sending with
    TTL 1 through that interface."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface))
    s.bind((group, port))
    mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(iface))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    return s


def answer_browsers(s, hello, answered=None):
    """Forever: answer each browser's question to the group with `hello` (bytes), by unicast;
    `answered(src)` after each answer."""
    while True:
        data, src = s.recvfrom(2048)
        try:
            m = json.loads(data)
        except ValueError:
            continue
        if isinstance(m, dict) and m.get("kind") == "hello" and m.get("port") == 0:
            s.sendto(hello, src)
            if answered:
                answered(src)
