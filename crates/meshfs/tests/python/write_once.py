"""Writes its second argument (UTF-8) into the FIFO named by the first, in ONE os.write, so the
hub receives it in one read however many messages it holds. Prints the number of bytes written.

usage: write_once.py FIFO TEXT
"""
import os
import sys

if __name__ == '__main__':
    fd = os.open(sys.argv[1], os.O_WRONLY)
    data = sys.argv[2].encode('utf-8')
    print(os.write(fd, data), flush=True)
    os.close(fd)
