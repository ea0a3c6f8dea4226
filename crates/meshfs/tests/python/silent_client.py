"""A client that registers with the hub and then never reads its FIFO (it keeps it open, so the
hub's writes succeed until the pipe is full). Prints `registered` once its registration is sent,
then waits for end of standard input.

usage: silent_client.py HUB_FIFO MY_FIFO
"""
import os
import sys

SEPARATOR = '¶'.encode('utf-8')

if __name__ == '__main__':
    hub, me = sys.argv[1], sys.argv[2]
    os.mkfifo(me)
    my_fd = os.open(me, os.O_RDONLY | os.O_NONBLOCK)
    hub_fd = os.open(hub, os.O_WRONLY)
    os.write(hub_fd, SEPARATOR + me.encode('utf-8'))
    print('registered', flush=True)
    sys.stdin.buffer.read()
    os.unlink(me)
