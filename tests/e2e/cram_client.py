#!/usr/bin/env python3
"""A CRAM-MD5 client (RFC 2195) for the Dovecot auth protocol, with Python's hmac only.

usage: cram_client.py SOCKET USER PASSWORD -> prints the OK / FAIL line, exit 0 on OK, 1 on FAIL,
2 on a protocol error.
"""
import base64
import hashlib
import hmac
import os
import socket
import sys


def main() -> int:
    path, user, password = sys.argv[1:4]
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(15)
    s.connect(path)
    f = s.makefile("rwb", buffering=0)
    f.write(f"VERSION\t1\t0\nCPID\t{os.getpid()}\n".encode())
    mechs = []
    while True:
        line = f.readline().decode().rstrip("\n")
        if not line:
            return 2
        if line.startswith("MECH\t"):
            mechs.append(line.split("\t")[1])
        if line == "DONE":
            break
    if "CRAM-MD5" not in mechs:
        print(f"server does not offer CRAM-MD5: {mechs}")
        return 2
    f.write(b"AUTH\t1\tCRAM-MD5\tservice=smtp\tsecured\n")
    line = f.readline().decode().rstrip("\n")
    if not line.startswith("CONT\t1\t"):
        print(line)
        return 1 if line.startswith("FAIL") else 2
    challenge = base64.b64decode(line.split("\t", 2)[2])
    digest = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
    f.write(b"CONT\t1\t" + base64.b64encode(f"{user} {digest}".encode()) + b"\n")
    line = f.readline().decode().rstrip("\n")
    print(line)
    return 0 if line.startswith("OK\t") else 1


if __name__ == "__main__":
    sys.exit(main())
