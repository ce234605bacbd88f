"""A loopback stand-in for an identity provider, for tests/e2e/oauth2.test.sh: serves a JWKS file at
/jwks.json and answers RFC 7662 introspection at /introspect (HTTP basic auth saslgate:s3cret; a token
"good-NAME" is active for NAME@example.org, anything else inactive). Logs each request line to stderr
and writes its port to PORT_FILE.

Usage: python3 oauth2_idp.py PORT_FILE JWKS_FILE
"""
import base64
import http.server
import json
import sys
import time
import urllib.parse

port_file, jwks_file = sys.argv[1], sys.argv[2]
expected_auth = "Basic " + base64.b64encode(b"saslgate:s3cret").decode()


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != "/jwks.json":
            return self.reply(404, {"error": "not found"})
        with open(jwks_file, "rb") as f:
            self.reply(200, f.read())

    def do_POST(self):
        if self.path != "/introspect":
            return self.reply(404, {"error": "not found"})
        if self.headers.get("Authorization") != expected_auth:
            return self.reply(401, {"error": "invalid_client"})
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode())
        token = form.get("token", [""])[0]
        if token.startswith("good-"):
            return self.reply(200, {"active": True, "email": token[5:] + "@example.org", "exp": int(time.time()) + 3600,
                                    "iss": "https://idp.e2e.test", "aud": "mail.e2e.test"})
        self.reply(200, {"active": False})

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))
        sys.stderr.flush()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
