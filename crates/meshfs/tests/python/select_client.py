"""Seed 001 step 3 client, written from the seed's description (the seed does not ship its code).

Registers with the hub (`¶<my fifo>`), then waits with select() on standard input and on its own
FIFO at once: each input chunk goes to the hub as `<my fifo>¶<text>`, everything the hub writes is
copied to standard output as it comes. End of input sends the goodbye `<my fifo>¶` (empty text).
Exits 0 after the goodbye, 1 if the hub closed our FIFO. The FIFO is removed on exit (not on
SIGKILL: the tests rely on that to leave a FIFO nobody reads).

usage: select_client.py HUB_FIFO MY_FIFO
"""
import os
import select
import sys

SEPARATOR = '¶'.encode('utf-8')


def chat(hub_fd, my_fd, me):
    while True:
        ready, _, _ = select.select([0, my_fd], [], [])
        if 0 in ready:
            text = os.read(0, 1000)
            os.write(hub_fd, me + SEPARATOR + text)
            if not text:
                return 0
        if my_fd in ready:
            data = os.read(my_fd, 65536)
            if not data:
                return 1
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()


def main():
    hub, me = sys.argv[1], sys.argv[2]
    os.mkfifo(me)
    try:
        hub_fd = os.open(hub, os.O_WRONLY)
        os.write(hub_fd, SEPARATOR + me.encode('utf-8'))
        my_fd = os.open(me, os.O_RDONLY)
        return chat(hub_fd, my_fd, me.encode('utf-8'))
    finally:
        try:
            os.unlink(me)
        except FileNotFoundError:
            pass


if __name__ == '__main__':
    sys.exit(main())
