"""Run a command on a pseudo-terminal, answer its password prompt, and copy everything it
writes to stdout. Usage: tty_run.py PASSWORD COMMAND [ARGS...]"""
import os
import pty
import sys

password = sys.argv[1].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
seen, answered = b"", False
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    seen = (seen + data)[-4096:]
    if not answered and b"password: " in seen:
        os.write(fd, password + b"\n")
        answered = True
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
