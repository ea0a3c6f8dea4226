"""An impostor on the LAN group: answers every browser's hello (port 0) with a forged hello,
as any host on the LAN can. Used by tests/trust.rs.

usage: forged_hello.py GROUP PORT IFACE JSON
"""
import sys

from lan_peer import answer_browsers, join

group, port, iface, forged = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = join(group, port, iface)
print("ready", flush=True)
answer_browsers(s, forged.encode(), lambda src: print("answered", src[1], flush=True))
