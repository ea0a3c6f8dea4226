"""A third-party DNS-SD peer for the meshfs tests: Python `zeroconf` (Debian python3-zeroconf)
on loopback, the way Avahi/Bonjour clients see `_meshfs._tcp`.

    zeroconf_peer.py browse              prints `added INSTANCE port=P name=N web=W` and
                                         `removed INSTANCE`, as services come and go
    zeroconf_peer.py register NAME PORT [KEY=VALUE...]
                                         advertises NAME at 127.0.0.1:PORT (TXT v=1, name=NAME,
                                         then KEY=VALUE...), prints `registered`; unregisters
                                         (goodbye) when stdin closes

Either mode runs until its stdin closes.
"""

import socket
import sys

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

TYPE = "_meshfs._tcp.local."


def say(*words):
    print(*words, flush=True)


def browse(zc):
    def changed(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Removed:
            say("removed", name)
            return
        if state_change is not ServiceStateChange.Added:
            return
        info = zeroconf.get_service_info(service_type, name, timeout=3000)
        if info is None:
            say("unresolved", name)
            return
        props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        say(
            "added",
            name,
            f"port={info.port}",
            f"name={props.get('name', '')}",
            f"web={props.get('web', '')}",
            f"v={props.get('v', '')}",
        )

    ServiceBrowser(zc, TYPE, handlers=[changed])
    sys.stdin.read()


def register(zc, name, port, extra):
    properties = {"v": "1", "name": name}
    properties.update(kv.split("=", 1) for kv in extra)
    info = ServiceInfo(
        TYPE,
        f"{name}.{TYPE}",
        addresses=[socket.inet_aton("127.0.0.1")],
        port=int(port),
        properties=properties,
        server=f"py-{name}.local.",
    )
    zc.register_service(info)
    say("registered")
    sys.stdin.read()
    zc.unregister_service(info)
    say("unregistered")


def main():
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        if sys.argv[1] == "browse":
            browse(zc)
        else:
            register(zc, sys.argv[2], sys.argv[3], sys.argv[4:])
    finally:
        zc.close()


if __name__ == "__main__":
    main()
