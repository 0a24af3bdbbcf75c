"""Local receivers for the head-end's alerts: an SMTP server (aiosmtpd) and an
HTTP server (webhooks, the generic SMS provider) that keep what they get and
answer what they are told to; and a clock a test moves. The tests use them;
so can an integrator trying the alerts without real servers:

    .venv/bin/python -m sim.receivers --smtp 2525 --http 8025 [--secret HEX]
    WK_SMTP_URL=smtp://127.0.0.1:2525 WK_SMS_URL=http://127.0.0.1:8025/sms wattkeeper serve ...

prints every mail, webhook and SMS request as it arrives (and whether a
webhook's signature verifies with the secret).
"""
import http.server
import json
import threading
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller

from headend.transport.broker import free_port


class SimClock:
    def __init__(self, t=1796000000):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, s):
        self.t += s


class _Collect:
    def __init__(self, sink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.sink.lock:
            self.sink.messages.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from,
                                       "message_id": msg["Message-ID"], "subject": str(msg["Subject"]),
                                       "body": msg.get_content(),
                                       "when": self.sink.stamp() if self.sink.stamp else None})
        if self.sink.on_message is not None:
            self.sink.on_message(self.sink.messages[-1])
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on a fixed free port; stop() closes the port (a server that
    is down), start() opens it again."""

    def __init__(self, port=None, stamp=None):
        self.port = port or free_port()
        self.messages = []
        self.lock = threading.Lock()
        self.stamp = stamp        # callable: a time recorded with each message
        self.on_message = None    # callable(message dict), called as each arrives
        self.controller = None

    @property
    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def start(self):
        self.controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def ids(self):
        with self.lock:
            return [m["message_id"] for m in self.messages]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class HttpSink:
    """An HTTP server on 127.0.0.1 that records every POST (raw body and
    headers) and answers statuses[i] to the i-th (the last one after)."""

    def __init__(self, statuses=(200,), reply=None, port=0, on_request=None):
        self.statuses = list(statuses)
        self.on_request = on_request
        self.reply = reply or {}
        self.requests = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if sink.on_request is not None:
                    sink.on_request(sink.requests[-1])
                k = len(sink.requests) - 1
                status = sink.statuses[min(k, len(sink.statuses) - 1)]
                out = json.dumps(sink.reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def main(argv=None):
    import argparse
    import time
    ap = argparse.ArgumentParser(prog="python -m sim.receivers", description="print the alerts a head-end sends")
    ap.add_argument("--smtp", type=int, default=2525, help="SMTP port on 127.0.0.1")
    ap.add_argument("--http", type=int, default=8025, help="HTTP port on 127.0.0.1 (webhooks, SMS)")
    ap.add_argument("--secret", default="", help="a webhook's secret_hex, to verify signatures")
    args = ap.parse_args(argv)
    from headend.transport import webhook

    def mail(m):
        print("MAIL to %s: %s\n  %s" % (", ".join(m["to"]), m["subject"], m["body"].strip().replace("\n", "\n  ")),
              flush=True)

    def post(r):
        sig = r["headers"].get(webhook.SIGNATURE_HEADER)
        ok = "" if not (sig and args.secret) else (" signature %s" % ("ok" if webhook.verify(
            args.secret, r["body"], sig) else "WRONG"))
        print("POST %s%s\n  %s" % (r["path"], ok, r["body"].decode("utf-8", "replace")), flush=True)
    smtp = SmtpSink(port=args.smtp)
    smtp.on_message = mail
    with smtp, HttpSink(port=args.http, on_request=post):
        print("SMTP on 127.0.0.1:%d, HTTP on 127.0.0.1:%d; Ctrl-C stops" % (args.smtp, args.http), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    main()
