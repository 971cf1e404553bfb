"""A canned HTTP/1.1 keep-alive server for client-side CPU measurements (`bench.client_cpu`).

Blocking sockets, a thread per connection: every request gets the same small JSON answer with a
``Content-Length``, so nearly all the CPU the client process spends is the client's own.

    python -m bench.canned_server PORT
"""

from __future__ import annotations

import socket
import sys
import threading

BODY = (
    b'{"id":"chatcmpl-x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hello there"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}'
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\ndate: x\r\nserver: canned\r\n\r\n"
    % len(BODY)
    + BODY
)


def serve(connection: socket.socket) -> None:
    """Answer each whole request (head and ``Content-Length`` body) on ``connection`` until it closes."""
    buffer = b""
    with connection:
        while data := connection.recv(65536):
            buffer += data
            while (end := buffer.find(b"\r\n\r\n")) >= 0:
                length = 0
                for line in buffer[:end].lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if len(buffer) < end + 4 + length:
                    break
                buffer = buffer[end + 4 + length :]
                connection.sendall(RESPONSE)


def main() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(100)
    print("ready", flush=True)
    while True:
        connection, _ = listener.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    main()
