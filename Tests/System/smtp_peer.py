"""A real SMTP server for the remote end of system tests: Debian's aiosmtpd
(run with /usr/bin/python3, whose dist-packages hold it), with switches for
the behaviours a test needs.

    /usr/bin/python3 smtp_peer.py CONFIG.json

CONFIG: {"port": N, "spool": DIR, "hostname": "...",
         "no_8bitmime": bool, "tls_cert": PATH, "tls_key": PATH,
         "greeting": "554 5.7.1 go away" (refuse every session),
         "rcpt": {"substring": "550 5.1.1 reply", ...},
         "rcpt_once": {"substring": "450 4.2.0 reply"} (first time only),
         "data": "552 5.3.4 reply"}

Every byte received is appended to DIR/wire.log (after TLS, the plain
text); every accepted message is DIR/msg-N.json with the envelope, the
ESMTP parameters, whether TLS was on, and the content as aiosmtpd decoded
it. DIR/sessions gets one byte per EHLO or HELO. The server prints
"ready" when listening.
"""
import asyncio
import base64
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

CONFIG = json.load(open(sys.argv[1]))
SPOOL = CONFIG["spool"]
SEEN = set()
COUNTER = {"n": 0}


def append(name, data):
    with open(os.path.join(SPOOL, name), "ab") as f:
        f.write(data)


class RecordingSMTP(SMTP):
    def data_received(self, data):
        append("wire.log", data)
        super().data_received(data)


class Handler:
    async def handle_HELO(self, server, session, envelope, hostname):
        append("sessions", b"h")
        session.host_name = hostname
        return "250 %s" % server.hostname

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        append("sessions", b"e")
        session.host_name = hostname
        if CONFIG.get("no_8bitmime"):
            responses = [r for r in responses if "8BITMIME" not in r]
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        for key, reply in CONFIG.get("rcpt", {}).items():
            if key in address:
                return reply
        for key, reply in CONFIG.get("rcpt_once", {}).items():
            if key in address and (key, address) not in SEEN:
                SEEN.add((key, address))
                return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if CONFIG.get("data"):
            return CONFIG["data"]
        COUNTER["n"] += 1
        record = {
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "rcpt_options": envelope.rcpt_options,
            "tls": session.ssl is not None,
            "helo": session.host_name,
            "content": base64.b64encode(envelope.original_content or envelope.content).decode(),
        }
        path = os.path.join(SPOOL, "msg-%d.json" % COUNTER["n"])
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Ok: queued as PEER%d" % COUNTER["n"]


class PeerController(Controller):
    def factory(self):
        return RecordingSMTP(self.handler, **self.SMTP_kwargs)


async def refuse_everything(greeting):
    """A server that refuses every session at the greeting."""
    async def session(reader, writer):
        append("sessions", b"r")
        writer.write(greeting.encode() + b"\r\n")
        await writer.drain()
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            append("wire.log", line)
            writer.write(b"221 2.0.0 Bye\r\n")
            await writer.drain()
        except asyncio.TimeoutError:
            pass
        writer.close()
    server = await asyncio.start_server(session, "127.0.0.1", CONFIG["port"])
    print("ready", flush=True)
    async with server:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def broken_tls():
    """A minimal server that offers STARTTLS, answers 220 to it and then
    hangs up instead of negotiating; without STARTTLS it takes mail."""
    async def session(reader, writer):
        append("sessions", b"b")
        tx = {"rcpt_tos": []}

        async def reply(text):
            writer.write(text.encode() + b"\r\n")
            await writer.drain()
        await reply("220 broken.example ESMTP")
        while True:
            line = await reader.readline()
            if not line:
                break
            append("wire.log", line)
            verb = line.decode(errors="replace").strip().split(" ")[0].upper()
            if verb == "EHLO":
                await reply("250-broken.example\r\n250-PIPELINING\r\n250 STARTTLS")
            elif verb == "STARTTLS":
                await reply("220 2.0.0 go ahead")
                break
            elif verb == "MAIL":
                tx = {"mail_from": line.decode().split(":", 1)[1].strip().strip("<>"), "rcpt_tos": []}
                await reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                tx["rcpt_tos"].append(line.decode().split(":", 1)[1].strip().strip("<>"))
                await reply("250 2.1.5 Ok")
            elif verb == "DATA":
                await reply("354 go")
                data = b""
                while True:
                    chunk = await reader.readline()
                    append("wire.log", chunk)
                    if chunk in (b".\r\n", b""):
                        break
                    data += chunk[1:] if chunk.startswith(b".") else chunk
                COUNTER["n"] += 1
                record = dict(tx, mail_options=[], rcpt_options=[], tls=False, helo="",
                              content=base64.b64encode(data).decode())
                with open(os.path.join(SPOOL, "msg-%d.json" % COUNTER["n"]), "w") as f:
                    json.dump(record, f)
                await reply("250 2.0.0 Ok: queued as PEER%d" % COUNTER["n"])
            elif verb == "QUIT":
                await reply("221 2.0.0 Bye")
                break
            else:
                await reply("250 2.0.0 Ok")
        writer.close()
    server = await asyncio.start_server(session, "127.0.0.1", CONFIG["port"])
    print("ready", flush=True)
    async with server:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def main():
    if CONFIG.get("broken_tls"):
        asyncio.run(broken_tls())
        return
    if CONFIG.get("greeting"):
        asyncio.run(refuse_everything(CONFIG["greeting"]))
        return
    context = None
    if CONFIG.get("tls_cert"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(CONFIG["tls_cert"], CONFIG["tls_key"])
    controller = PeerController(
        Handler(), hostname="127.0.0.1", port=CONFIG["port"],
        server_hostname=CONFIG.get("hostname", "peer.example.net"),
        tls_context=context, require_starttls=False, decode_data=False,
        enable_SMTPUTF8=CONFIG.get("smtputf8", True), data_size_limit=CONFIG.get("size_limit", 33554432))
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
