"""A plain multicast chat sender, as the seed 004 ChatClient.py describes: send TEXT as one
datagram to GROUP:PORT through interface IFACE (TTL 1). Usage: group_chat_send.py GROUP PORT
IFACE TEXT [SOURCE]; SOURCE, an address of this host, is the datagram's source (another
address of the host, as its LAN address would be)."""
import socket
import sys

group, port, iface, text = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface))
if len(sys.argv) > 5:
    s.bind((sys.argv[5], 0))
s.sendto(text.encode("utf-8"), (group, port))
