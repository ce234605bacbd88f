#!/usr/bin/env python3
"""Generates the user tables for bench/compare (cached: reruns with the same parameters are instant).

  gen-users.py small DIR --count N --bcrypt-cost C
      DIR/table          one passwd-file with N users per scheme (--distinct hashes per crypt scheme), Dovecot format, shared by both servers:
                         plain-I@bench.test:{PLAIN}pw, sha-I@bench.test:{SHA512-CRYPT}$6$..., blf-I@bench.test:{BLF-CRYPT}$2y$CC$...
      DIR/users-plain.txt, users-sha512.txt, users-blf.txt   the matching "user:password" lines for saslgate-bench
  gen-users.py big DIR --count N
      DIR/table          N users, {SHA512-CRYPT}, 1,000 distinct hashes reused (user I has password pw-(I mod 1000)-...)
      DIR/users.txt      "user:password" for all of them

PLAIN users each have their own password; the crypt schemes use --distinct (default 1,000) different
passwords, each hashed with its own salt, reused round-robin. Hashes are made with libxcrypt through
Python's crypt module (SHA-512 with the default 5,000 rounds; bcrypt at --bcrypt-cost) on all cores.
"""
import argparse
import multiprocessing
import os
import sys
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
import crypt  # noqa: E402  (deprecated in 3.11, still present; libxcrypt underneath)

DOMAIN = "bench.test"


def pw(prefix, i):
    return f"{prefix}-pw-{i:07d}-Xq"


def sha512(p):
    return crypt.crypt(p, crypt.mksalt(crypt.METHOD_SHA512))


def blf(args):
    p, cost = args
    salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << cost).replace("$2b$", "$2y$", 1)
    return crypt.crypt(p, salt)


def write_atomic(path, lines):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(lines)
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)


def small(d, n, cost, distinct):
    """Crypt users: `distinct` different passwords and hashes, reused round-robin (user I has the
    password and hash number I mod distinct); hashing 10k bcrypt passwords would take minutes here."""
    k = min(n, distinct)
    plain = [pw("plain", i) for i in range(n)]
    shad = [pw("sha", j) for j in range(k)]
    blfd = [pw("blf", j) for j in range(k)]
    with multiprocessing.Pool(os.cpu_count()) as pool:
        shadh = pool.map(sha512, shad, chunksize=64)
        blfdh = pool.map(blf, [(p, cost) for p in blfd], chunksize=32)
    for h in shadh + blfdh:
        assert h.startswith("$"), h
    shap = [shad[i % k] for i in range(n)]
    blfp = [blfd[i % k] for i in range(n)]
    shah = [shadh[i % k] for i in range(n)]
    blfh = [blfdh[i % k] for i in range(n)]
    table = []
    table += [f"plain-{i}@{DOMAIN}:{{PLAIN}}{plain[i]}\n" for i in range(n)]
    table += [f"sha-{i}@{DOMAIN}:{{SHA512-CRYPT}}{shah[i]}\n" for i in range(n)]
    table += [f"blf-{i}@{DOMAIN}:{{BLF-CRYPT}}{blfh[i]}\n" for i in range(n)]
    write_atomic(os.path.join(d, "users-plain.txt"), [f"plain-{i}@{DOMAIN}:{plain[i]}\n" for i in range(n)])
    write_atomic(os.path.join(d, "users-sha512.txt"), [f"sha-{i}@{DOMAIN}:{shap[i]}\n" for i in range(n)])
    write_atomic(os.path.join(d, "users-blf.txt"), [f"blf-{i}@{DOMAIN}:{blfp[i]}\n" for i in range(n)])
    write_atomic(os.path.join(d, "table"), table)


def big(d, n):
    distinct = min(n, 1000)
    ps = [pw("big", j) for j in range(distinct)]
    with multiprocessing.Pool(os.cpu_count()) as pool:
        hs = pool.map(sha512, ps, chunksize=64)
    write_atomic(os.path.join(d, "table"),
                 (f"u{i}@{DOMAIN}:{{SHA512-CRYPT}}{hs[i % distinct]}\n" for i in range(n)))
    write_atomic(os.path.join(d, "users.txt"), (f"u{i}@{DOMAIN}:{ps[i % distinct]}\n" for i in range(n)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["small", "big"])
    ap.add_argument("dir")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--bcrypt-cost", type=int, default=5)
    ap.add_argument("--distinct", type=int, default=1000, help="distinct crypt hashes per scheme (small)")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    stamp = os.path.join(a.dir, "DONE")
    key = f"{a.kind} {a.count} {a.bcrypt_cost if a.kind == 'small' else ''} {a.distinct} v2\n"
    if os.path.exists(stamp) and open(stamp).read() == key:
        return
    if a.kind == "small":
        small(a.dir, a.count, a.bcrypt_cost, a.distinct)
    else:
        big(a.dir, a.count)
    with open(stamp, "w") as f:
        f.write(key)


if __name__ == "__main__":
    sys.exit(main())
