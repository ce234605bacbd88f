#!/usr/bin/env python3
"""Writes the committed seed corpora Fuzz/corpus/FuzzProtocol and Fuzz/corpus/FuzzMechanisms.

Deterministic: run it again and nothing changes (`git status` stays clean). The protocol seeds are
real client lines from /work/docs/PROTOCOL.md (Postfix 3.7, Exim, doveadm 2.3 transcripts); the
mechanism seeds are complete exchanges computed for the fuzz harness's fixed context (same random
bytes, clock and host name as Sources/FuzzMechanisms/FuzzMechanisms.swift), so the successful path
of every mechanism is in the corpus. User `user`, password `pencil` (the RFC 5802 example).

Usage: python3 Fuzz/make-seeds.py
"""
import base64
import hashlib
import hmac
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RS = b"\x1e"

# --- the harness's deterministic context ---------------------------------------------------------


def fixed_random(n):
    return bytes((i * 73 + 41) & 0xFF for i in range(n))


NOW = 1795557314
HOST = b"mx.example.org"
USER = b"user"
PASSWORD = b"pencil"
REALM = b"example.org"


def cram_challenge():
    digits = bytes(ord("0") + b % 10 for b in fixed_random(16))
    return b"<" + digits + b"." + str(NOW).encode() + b"@" + HOST + b">"


def cram_response(user=USER, password=PASSWORD, upper=False):
    digest = hmac.new(password, cram_challenge(), hashlib.md5).hexdigest()
    return user + b" " + (digest.upper() if upper else digest).encode()


def digest_nonce():
    return base64.b64encode(fixed_random(16))


def digest_response(realm=b"", cnonce=b"OA6MHXh6VqTrRk", uri=b"smtp/mx.example.org", authzid=None,
                    user=USER, password=PASSWORD, extra=b""):
    md5 = lambda b: hashlib.md5(b).digest()
    hexmd5 = lambda b: hashlib.md5(b).hexdigest().encode()
    nonce = digest_nonce()
    a1 = md5(user + b":" + realm + b":" + password) + b":" + nonce + b":" + cnonce
    if authzid is not None:
        a1 += b":" + authzid
    nc, qop = b"00000001", b"auth"
    resp = hexmd5(hexmd5(a1) + b":" + nonce + b":" + nc + b":" + cnonce + b":" + qop + b":"
                  + hexmd5(b"AUTHENTICATE:" + uri))
    out = (b'username="' + user + b'",realm="' + realm + b'",nonce="' + nonce + b'",cnonce="' + cnonce
           + b'",nc=' + nc + b",qop=" + qop + b',digest-uri="' + uri + b'",response=' + resp)
    if authzid is not None:
        out += b',authzid="' + authzid + b'"'
    return out + b",charset=utf-8" + extra


def scram_server_nonce():
    out = bytearray()
    for b in fixed_random(64):
        c = 0x21 + b % 94
        out.append(ord("~") if c == ord(",") else c)
    return bytes(out)


def scram_exchange(hashname, client_first, extensions=b""):
    """(client-first, client-final with the right proof) for the harness's fixed salt and nonce."""
    gs2_end = client_first.index(b",", client_first.index(b",") + 1) + 1
    gs2, bare = client_first[:gs2_end], client_first[gs2_end:]
    cnonce = [f[2:] for f in bare.split(b",") if f.startswith(b"r=")][0]
    nonce = cnonce + scram_server_nonce()
    salt = fixed_random(16)
    server_first = b"r=" + nonce + b",s=" + base64.b64encode(salt) + b",i=4096"
    without_proof = b"c=" + base64.b64encode(gs2) + b",r=" + nonce + extensions
    auth_message = bare + b"," + server_first + b"," + without_proof
    h = getattr(hashlib, hashname)
    salted = hashlib.pbkdf2_hmac(hashname, PASSWORD, salt, 4096)
    client_key = hmac.new(salted, b"Client Key", h).digest()
    stored_key = h(client_key).digest()
    signature = hmac.new(stored_key, auth_message, h).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    return client_first, without_proof + b",p=" + base64.b64encode(proof)


# --- corpora --------------------------------------------------------------------------------------

PROTOCOL = {
    # Postfix 3.7.11 (docs/PROTOCOL.md §1.6)
    "postfix-version": b"VERSION\t1\t0",
    "postfix-cpid": b"CPID\t4583",
    "postfix-plain-ir": b"AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp=AHRlc3QAdGVzdHBhc3M=",
    "postfix-plain-noir": b"AUTH\t3\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1",
    "postfix-plain-tls": b"AUTH\t2\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tsecured\tresp=AHRlc3QAd3Jvbmc=",
    "postfix-cont": b"CONT\t3\tAHRlc3QAdGVzdHBhc3M=",
    "postfix-login": b"AUTH\t4\tLOGIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1",
    "postfix-login-user": b"CONT\t4\tdGVzdA==",
    "postfix-lowercase-mech": b"AUTH\t5\tplain\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1",
    # Exim (§1.7): resp= empty from a minor-0 client means "no initial response"
    "exim-plain": b"AUTH\t1\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.7\tlip=192.0.2.1\tnologin\tresp=AHRlc3QAdGVzdHBhc3M=",
    "exim-empty-resp": b"AUTH\t1\tPLAIN\tservice=smtp\tsecured\trip=192.0.2.7\tlip=192.0.2.1\tnologin\tresp=",
    # doveadm auth test 2.3 (§1.8)
    "doveadm-version": b"VERSION\t1\t2",
    "doveadm-cpid": b"CPID\t1942",
    "doveadm-plain": b"AUTH\t1\tPLAIN\tservice=doveadm\tdebug\tresp=dGVzdAB0ZXN0AHRlc3RwYXNz",
    "doveadm-x": b"AUTH\t1\tPLAIN\tservice=smtp\tdebug\tlip=192.0.2.2\trip=192.0.2.1\tsecured\tresp=dGVzdAB0ZXN0AHRlc3RwYXNz",
    # Dovecot 2.4 spelling, every flag, escapes, CRLF, cancel, SCRAM and empty CONT
    "dovecot24-protocol": b"AUTH\t9\tPLAIN\tprotocol=submission\trip=2001:db8::1\trport=51234\tlport=587\tsession=abc\tvalid-client-cert\tno-penalty\tfinal-resp-ok\tresp==",
    "escaped-session": b"AUTH\t7\tPLAIN\tservice=smtp\tsession=a\x01tb\x01nc\x011d\x010\tresp=AHRlc3QAdGVzdHBhc3M=",
    "crlf": b"AUTH\t8\tLOGIN\tservice=smtp\r",
    "cancel": b"CANCEL\t5",
    "scram-ir": b"AUTH\t1\tSCRAM-SHA-1\tservice=smtp\tresp=biwsbj10ZXN0LHI9ck9wck5HZndFYmVSV2diTkVrcU8=",
    "cont-empty": b"CONT\t1\t",
    "base64-whitespace": b"CONT\t2\tAHRl c3QA\tdGVz dHBh c3M=",
    "id-max": b"AUTH\t4294967295\tCRAM-MD5\tservice=smtp",
}


def mechanism_seeds():
    seeds = {}
    # PLAIN (RFC 4616)
    seeds["plain-ir"] = b"P1" + b"\x00user\x00pencil"
    seeds["plain-after-empty-challenge"] = b"P0" + b"\x00user\x00pencil"
    seeds["plain-authzid-same"] = b"P1" + b"user\x00user\x00pencil"
    seeds["plain-authzid-other"] = b"P1" + b"other\x00user\x00pencil"
    seeds["plain-one-nul"] = b"P1" + b"user\x00pencil"
    seeds["plain-out-of-order"] = b"P0" + b"@V" + RS + b"\x00user\x00pencil"
    # LOGIN
    seeds["login"] = b"L0" + b"user" + RS + b"pencil"
    seeds["login-ir"] = b"L1" + b"user" + RS + b"pencil"
    seeds["login-empty-user"] = b"L0" + b"" + RS + b"pencil"
    # ANONYMOUS (RFC 4505): trace as initial response, after an empty challenge, not UTF-8
    seeds["anonymous-ir"] = b"A1" + b"trace@example.org"
    seeds["anonymous-no-ir"] = b"A0" + b"trace@example.org"
    seeds["anonymous-bad-utf8"] = b"A1" + b"\xff\xfe"
    # CRAM-MD5 (RFC 2195): cleartext and stored context, placeholder, upper-case digest, bad context
    seeds["cram-plaintext"] = b"C0" + cram_response()
    seeds["cram-context"] = b"C2" + cram_response()
    seeds["cram-placeholder"] = b"C0" + b"user @D"
    seeds["cram-space-in-name"] = b"C0" + b"us er @D"
    seeds["cram-upper"] = b"C0" + cram_response(upper=True)
    seeds["cram-bad-context"] = b"C6" + cram_response()
    # DIGEST-MD5 (RFC 2831): no realms / realms offered; cleartext / stored HA1; authzid; placeholder
    seeds["digest-plaintext"] = b"D0" + digest_response()
    seeds["digest-realm"] = b"D8" + digest_response(realm=REALM)
    seeds["digest-ha1"] = b"D:" + digest_response(realm=REALM)
    seeds["digest-authzid"] = b"D0" + digest_response(authzid=b"user")
    seeds["digest-placeholder"] = (b"D0" + b'username="user",nonce="@N",cnonce="abc",nc=1,qop=auth,'
                                   b'digest-uri="smtp/x",response=00000000000000000000000000000000')
    seeds["digest-lws-escapes"] = (b"D0" + b' , USERNAME = "u\\"s\\\\er" ,, nonce="@N", cnonce=x ,'
                                   b" response=0123456789abcdef0123456789abcdef , maxbuf=65536, cipher=rc4,")
    # SCRAM-SHA-1 / -256 (RFC 5802 / 7677): cleartext and stored verifier, no initial response,
    # authzid, extensions, placeholders, channel binding
    for sel, name, hashname in ((b"S", "sha1", "sha1"), (b"T", "sha256", "sha256")):
        first, final = scram_exchange(hashname, b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
        seeds[f"scram-{name}-plaintext"] = sel + b"1" + first + RS + final
        seeds[f"scram-{name}-stored"] = sel + b"3" + first + RS + final
        seeds[f"scram-{name}-no-ir"] = sel + b"0" + first + RS + final
        first, final = scram_exchange(hashname, b"n,a=user,n=user,r=rOprNGfwEbeRWgbNEkqO,x=1", b",y=ext")
        seeds[f"scram-{name}-authzid-ext"] = sel + b"3" + first + RS + final
    seeds["scram-placeholders"] = b"S3" + b"y,,n=us=2Cer,r=abc" + RS + b"c=eSws,r=@N,p=@P"
    seeds["scram-channel-binding"] = b"T1" + b"p=tls-unique,,n=user,r=abc"
    seeds["scram-bad-stored"] = b"T7" + b"n,,n=user,r=abc" + RS + b"c=biws,r=@N,p=@P"
    return seeds


def write(directory, seeds):
    os.makedirs(directory, exist_ok=True)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write(os.path.join(HERE, "corpus", "FuzzProtocol"), PROTOCOL)
    write(os.path.join(HERE, "corpus", "FuzzMechanisms"), mechanism_seeds())
    print("seeds written:", len(PROTOCOL), "protocol,", len(mechanism_seeds()), "mechanisms")
