# A graded lab06 image: before serving, it tries to reach the grading machine over the network.
import http.server, json, socket
results = {}
for host in ("192.0.2.2", "10.0.2.2", "10.0.2.3", "172.17.0.1"):
    try:
        s = socket.create_connection((host, 47123), timeout=3)
        s.sendall(b"HELLO-FROM-GRADED-CONTAINER via " + host.encode()); s.close(); results[host] = "connected"
    except Exception as e:
        results[host] = repr(e)
print(json.dumps(results), flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = json.dumps(results).encode(); self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
http.server.HTTPServer(("0.0.0.0", 8000), H).serve_forever()
