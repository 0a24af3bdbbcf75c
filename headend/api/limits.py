"""What every request must respect before a route sees it:

* a bound on bodies: anything longer than settings.max_body_bytes gets 413
  before the application reads it (declared by Content-Length) or as soon
  as the stream passes the bound (chunked), so no request can make the
  process buffer or parse without limit;
* no NUL character in the path, the query string or a form body (422):
  PostgreSQL text cannot hold one. JSON bodies are checked by
  models.base.Body (check_text), multipart bodies may carry binary files."""
import json

from starlette.exceptions import HTTPException


NUL = b"%00"
NUL_TEXT = "text must not contain NUL characters"


class _TooLarge(HTTPException):
    """Raised from receive(): the application's error handling answers 413."""

    def __init__(self, max_bytes):
        HTTPException.__init__(self, 413, "request body larger than %d bytes" % max_bytes)


class BodyLimit:
    """ASGI middleware: `app.add_middleware(BodyLimit, max_bytes=...)`."""

    def __init__(self, app, max_bytes):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send, status=413, detail=None):
        body = json.dumps({"detail": detail or "request body larger than %d bytes" % self.max_bytes}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if NUL in scope.get("query_string", b"").lower() or "\x00" in scope.get("path", ""):
            return await self._refuse(send, 422, NUL_TEXT)
        form = False
        for k, v in scope.get("headers", ()):
            if k == b"content-type" and v.startswith(b"application/x-www-form-urlencoded"):
                form = True
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    return await self._refuse(send)
        seen = [0]
        started = [False]
        tail = [b""]

        async def counting_receive():
            msg = await receive()
            if msg["type"] == "http.request":
                chunk = msg.get("body", b"")
                seen[0] += len(chunk)
                if seen[0] > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
                if form:
                    text = tail[0] + chunk.lower()
                    if NUL in text or b"\x00" in text:
                        raise HTTPException(422, NUL_TEXT)
                    tail[0] = text[-2:]
            return msg

        async def tracking_send(msg):
            if msg["type"] == "http.response.start":
                started[0] = True
            await send(msg)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started[0]:
                await self._refuse(send)
