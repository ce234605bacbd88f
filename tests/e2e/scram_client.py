#!/usr/bin/env python3
"""An independent SCRAM-SHA-1 / SCRAM-SHA-256 client (RFC 5802 / 7677) for the Dovecot auth protocol,
written from the RFCs with Python's hashlib/hmac only, to check saslgated's SCRAM from the outside.

usage: scram_client.py SOCKET MECH USER PASSWORD  -> prints OK / FAIL line, exit 0 on OK, 1 on FAIL,
2 on a protocol error (including a wrong server signature).
"""
import base64
import hashlib
import hmac
import os
import socket
import sys


def main() -> int:
    path, mech, user, password = sys.argv[1:5]
    algo = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}[mech.upper()]
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(15)
    s.connect(path)
    f = s.makefile("rwb", buffering=0)

    def send(line: str) -> None:
        f.write(line.encode() + b"\n")

    def recv() -> str:
        line = f.readline()
        if not line:
            raise SystemExit("server closed the connection")
        return line.decode().rstrip("\n")

    send("VERSION\t1\t0")
    send(f"CPID\t{os.getpid()}")
    mechs = []
    while True:
        line = recv()
        if line.startswith("MECH\t"):
            mechs.append(line.split("\t")[1])
        if line == "DONE":
            break
    if mech.upper() not in mechs:
        print(f"server does not offer {mech}: {mechs}")
        return 2

    cnonce = base64.b64encode(os.urandom(18)).decode()
    saslname = user.replace("=", "=3D").replace(",", "=2C")
    first_bare = f"n={saslname},r={cnonce}"
    send(f"AUTH\t1\t{mech}\tservice=smtp\tresp=" + base64.b64encode(("n,," + first_bare).encode()).decode())
    line = recv()
    if not line.startswith("CONT\t1\t"):
        print(line)
        return 1 if line.startswith("FAIL") else 2
    server_first = base64.b64decode(line.split("\t", 2)[2]).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    nonce, salt, iterations = fields["r"], base64.b64decode(fields["s"]), int(fields["i"])
    if not nonce.startswith(cnonce) or iterations < 4096:
        print("bad server-first message")
        return 2

    salted = hashlib.pbkdf2_hmac(algo, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", algo).digest()
    stored_key = hashlib.new(algo, client_key).digest()
    without_proof = f"c=biws,r={nonce}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, algo).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    send("CONT\t1\t" + base64.b64encode(final.encode()).decode())
    line = recv()
    if line.startswith("CONT\t1\t"):
        server_final = base64.b64decode(line.split("\t", 2)[2]).decode()
        server_key = hmac.new(salted, b"Server Key", algo).digest()
        expected = "v=" + base64.b64encode(hmac.new(server_key, auth_message, algo).digest()).decode()
        if not hmac.compare_digest(server_final, expected):
            print("server signature does not verify")
            return 2
        send("CONT\t1\t")
        line = recv()
    print(line)
    return 0 if line.startswith("OK\t1\t") else 1


if __name__ == "__main__":
    sys.exit(main())
