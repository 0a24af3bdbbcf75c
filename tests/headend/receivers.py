"""Real local receivers for the notification tests: an SMTP server (aiosmtpd)
and an HTTP server (webhooks, the generic SMS provider) that answers what a
test scripts; and a clock the test moves."""
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
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on a fixed free port; stop() closes the port (a server that
    is down), start() opens it again."""

    def __init__(self, port=None, stamp=None):
        self.port = port or free_port()
        self.messages = []
        self.lock = threading.Lock()
        self.stamp = stamp        # callable: a time recorded with each message
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

    def __init__(self, statuses=(200,), reply=None):
        self.statuses = list(statuses)
        self.reply = reply or {}
        self.requests = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
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
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
