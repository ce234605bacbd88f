#!/usr/bin/env python3
"""Keys, a JWKS and signed JWTs for tests/e2e/oauth2.test.sh, with openssl and the standard library only.

  oauth2_tokens.py keys DIR                    RSA keys rsa1, rsa2 and a P-256 key ec1 in DIR; DIR/jwks.json
                                               publishes rsa1 and ec1 (rsa2 is a key the issuer never published)
  oauth2_tokens.py token DIR KID [key=value]   a JWT signed by DIR/KID.pem; claims: user, iss, aud, exp (seconds
                                               from now), alg (header alg, e.g. none), pad (extra claim bytes)
  oauth2_tokens.py smtp PORT MECH USER TOKEN   AUTH MECH (XOAUTH2 or OAUTHBEARER) with smtplib after STARTTLS;
                                               prints the final SMTP code
  oauth2_tokens.py authline SOCKET USER TOKEN  one AUTH XOAUTH2 line straight to the auth socket; prints the reply
"""
import base64, json, smtplib, socket, ssl, subprocess, sys, time

ISSUER = "https://idp.e2e.test"
AUDIENCE = "mail.e2e.test"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def keys(d):
    for kid in ("rsa1", "rsa2"):
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", f"{d}/{kid}.pem")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{d}/ec1.pem")
    jwks = {"keys": [rsa_jwk(d, "rsa1"), ec_jwk(d, "ec1")]}
    with open(f"{d}/jwks.json", "w") as f:
        json.dump(jwks, f)


def rsa_jwk(d, kid):
    modulus = openssl("rsa", "-in", f"{d}/{kid}.pem", "-noout", "-modulus").decode().strip().split("=", 1)[1]
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64url(bytes.fromhex(modulus)), "e": "AQAB"}


def ec_jwk(d, kid):
    der = openssl("pkey", "-in", f"{d}/{kid}.pem", "-pubout", "-outform", "DER")
    point = der[-65:]  # 04 || x || y at the end of the SubjectPublicKeyInfo
    return {"kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256", "x": b64url(point[1:33]), "y": b64url(point[33:])}


def der_to_raw(sig):
    """ECDSA-Sig-Value (DER SEQUENCE of two INTEGERs) to JWS r || s."""
    def integer(buf, i):
        assert buf[i] == 2
        n = buf[i + 1]
        return int.from_bytes(buf[i + 2:i + 2 + n], "big"), i + 2 + n
    i = 2 if sig[1] < 0x80 else 3
    r, i = integer(sig, i)
    s, _ = integer(sig, i)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def token(d, kid, opts):
    now = int(time.time())
    alg = opts.get("alg", "ES256" if kid.startswith("ec") else "RS256")
    claims = {"iss": opts.get("iss", ISSUER), "aud": opts.get("aud", AUDIENCE), "email": opts.get("user", "alice@example.org"),
              "iat": now, "exp": now + int(opts.get("exp", "600"))}
    if "pad" in opts:
        claims["pad"] = "x" * int(opts["pad"])
    header = {"alg": alg, "typ": "JWT", "kid": kid}
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
    if alg == "none":
        return signing_input.decode() + "."
    sig = openssl("dgst", "-sha256", "-sign", f"{d}/{kid}.pem", data=signing_input)
    if kid.startswith("ec"):
        sig = der_to_raw(sig)
    return signing_input.decode() + "." + b64url(sig)


def smtp(port, mech, user, tok):
    client = smtplib.SMTP("127.0.0.1", int(port), timeout=30)
    client.ehlo("client.e2e.test")
    client.starttls(context=ssl._create_unverified_context())
    client.ehlo("client.e2e.test")
    if mech == "XOAUTH2":
        first = f"user={user}\x01auth=Bearer {tok}\x01\x01"
        dummy = ""
    else:
        first = f"n,a={user},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {tok}\x01\x01"
        dummy = "\x01"
    answers = []

    def authobject(challenge=None):
        if challenge is None:
            return first
        answers.append(challenge)  # the JSON error of RFC 7628 §3.2.2
        return dummy

    try:
        code, _ = client.auth(mech, authobject)
    except smtplib.SMTPAuthenticationError as e:
        code = e.smtp_code
    for challenge in answers:
        json.loads(challenge)  # a failure challenge must be JSON
    print(code, "challenge" if answers else "")
    client.close()


def authline(path, user, tok):
    message = base64.b64encode(f"user={user}\x01auth=Bearer {tok}\x01\x01".encode()).decode()
    line = f"AUTH\t1\tXOAUTH2\tservice=smtp\tsecured\tnologin\tresp={message}\n".encode()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(path)
    s.sendall(b"VERSION\t1\t2\nCPID\t4242\n" + line)
    data = b""
    while not any(l.startswith((b"OK\t1", b"CONT\t1", b"FAIL\t1")) for l in data.split(b"\n")):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    replies = [l.decode().replace("\t", " ") for l in data.split(b"\n") if l.startswith((b"OK", b"CONT", b"FAIL"))]
    print(len(line), " | ".join(replies))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "keys":
        keys(sys.argv[2])
    elif cmd == "token":
        print(token(sys.argv[2], sys.argv[3], dict(a.split("=", 1) for a in sys.argv[4:])))
    elif cmd == "smtp":
        smtp(*sys.argv[2:6])
    elif cmd == "authline":
        authline(*sys.argv[2:5])
