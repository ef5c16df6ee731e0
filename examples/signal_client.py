#!/usr/bin/env python3
"""Push one signal to a running kraken-paper engine and print the reply.

Standard library only: the WebSocket handshake and framing (RFC 6455, text frames, client
masking) are done by hand below. The engine must run with `external_signals.enabled: true`
and the token in the environment variable it names (default KRAKEN_PAPER_SIGNAL_TOKEN);
this client reads the same variable and sends it as `Authorization: Bearer <token>`.

    KRAKEN_PAPER_SIGNAL_TOKEN=s3cret python3 examples/signal_client.py \
        --url ws://127.0.0.1:8090 --source my_model --pair BTC/USD --score 0.8 --confidence 0.6
"""

import argparse, base64, json, os, socket, struct, sys, urllib.parse


def connect(url, token):
    u = urllib.parse.urlparse(url)
    port = u.port or 80
    sock = socket.create_connection((u.hostname, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.hostname}:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit(f"connection closed during the handshake: {head.decode(errors='replace')}")
        head += chunk
    status = head.split(b"\r\n", 1)[0].decode()
    if " 101 " not in status + " ":
        sys.exit(f"refused: {head.decode(errors='replace').strip()}")
    return sock, head.split(b"\r\n\r\n", 1)[1]


def send_text(sock, text):
    data, mask = text.encode(), os.urandom(4)
    n = len(data)
    header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                              struct.pack("!BH", 0x80 | 126, n) if n < 65536 else
                              struct.pack("!BQ", 0x80 | 127, n))
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def recv_exact(sock, buf, n):
    while len(buf) < n:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("connection closed")
        buf += chunk
    return buf[:n], buf[n:]


def recv_text(sock, buf):
    """Reads frames until a text frame (the server never fragments its short replies)."""
    while True:
        (b0, b1), buf = recv_exact(sock, buf, 2)
        n = b1 & 0x7F
        if n == 126:
            raw, buf = recv_exact(sock, buf, 2); n = struct.unpack("!H", raw)[0]
        elif n == 127:
            raw, buf = recv_exact(sock, buf, 8); n = struct.unpack("!Q", raw)[0]
        payload, buf = recv_exact(sock, buf, n)
        if b0 & 0x0F == 0x1:
            return payload.decode(), buf
        if b0 & 0x0F == 0x8:
            sys.exit("server closed the connection")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", default="ws://127.0.0.1:8090")
    p.add_argument("--token-env", default="KRAKEN_PAPER_SIGNAL_TOKEN")
    p.add_argument("--source", default="my_model")
    p.add_argument("--pair", default="BTC/USD")
    p.add_argument("--score", type=float, default=0.8)
    p.add_argument("--confidence", type=float, default=0.6)
    p.add_argument("--horizon", default="5m")
    p.add_argument("--explanation")
    p.add_argument("--raw", help="send this text as is instead of a signal built from the options")
    a = p.parse_args()
    token = os.environ.get(a.token_env) or sys.exit(f"set {a.token_env} to the engine's token")
    sig = {"source": a.source, "pair": a.pair, "score": a.score,
           "confidence": a.confidence, "horizon": a.horizon}
    if a.explanation:
        sig["explanation"] = a.explanation
    sock, buf = connect(a.url, token)
    send_text(sock, a.raw if a.raw is not None else json.dumps(sig))
    reply, _ = recv_text(sock, buf)
    print(reply)
    sock.sendall(bytes([0x88, 0x80]) + os.urandom(4))  # masked close frame, no payload
    sock.close()
    sys.exit(0 if json.loads(reply).get("ok") else 1)


if __name__ == "__main__":
    main()
