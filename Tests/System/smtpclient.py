"""A raw SMTP client for dialogue tests: it sends exactly the bytes given
and returns each reply exactly as received."""
import re
import socket


class RawSMTP:
    def __init__(self, port, source="127.0.0.1", timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.buffer = b""
        self.greeting = self.reply()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        """One complete (possibly multi-line) reply; '' when the server closed."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "\n".join(lines)
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            text = line.decode()
            lines.append(text)
            if re.match(r"^\d{3} ", text) or not re.match(r"^\d{3}-", text):
                return "\n".join(lines)

    def command(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def closed(self):
        """True when the server has closed the connection."""
        try:
            self.sock.settimeout(5)
            return self.sock.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def ehlo(self, name="client.example.org"):
        reply = self.command(f"EHLO {name}")
        assert reply.startswith("250-") or reply.startswith("250 "), reply
        return reply
