import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 47123)); s.listen(5)
while True:
    c, a = s.accept(); c.settimeout(3)
    try: data = c.recv(200)
    except Exception: data = b""
    print(time.strftime("%H:%M:%S"), "connection from", a, data, flush=True); c.close()
