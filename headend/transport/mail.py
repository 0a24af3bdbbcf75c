"""E-mail over SMTP (smtplib).

    WK_SMTP_URL=smtp://host:25                plain (a local relay)
    WK_SMTP_URL=smtp+starttls://user:pw@host:587
    WK_SMTP_URL=smtps://user:pw@host:465      TLS from the start

Each message's Message-ID is its notification's idempotency key, so a
mail client that sees the same message twice shows it once.
"""
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from .channels import DeliveryError

SCHEMES = {"smtp": (25, False, False), "smtp+starttls": (587, True, False), "smtps": (465, False, True)}


def parse_smtp_url(url):
    u = urlsplit(url)
    if u.scheme not in SCHEMES:
        raise ValueError("SMTP URL must start with smtp://, smtp+starttls:// or smtps://: %r" % url)
    port, starttls, tls = SCHEMES[u.scheme]
    return {"host": u.hostname or "127.0.0.1", "port": u.port or port, "starttls": starttls, "tls": tls,
            "username": unquote(u.username) if u.username else None,
            "password": unquote(u.password) if u.password else None}


def build_message(n, sender):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = n.recipient
    msg["Subject"] = n.subject
    msg["Date"] = formatdate(n.created, localtime=False)
    msg["Message-ID"] = "<%s@wattkeeper>" % n.idempotency_key
    msg.set_content(n.body)
    return msg


class EmailChannel:
    name = "email"
    at_least_once = False

    def __init__(self, url, sender, timeout=10.0):
        self.cfg = parse_smtp_url(url)
        self.sender = sender
        self.timeout = timeout

    def send(self, n, hook=None):
        c = self.cfg
        try:
            if c["tls"]:
                smtp = smtplib.SMTP_SSL(c["host"], c["port"], timeout=self.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(c["host"], c["port"], timeout=self.timeout)
            with smtp:
                if c["starttls"]:
                    smtp.starttls(context=ssl.create_default_context())
                if c["username"]:
                    smtp.login(c["username"], c["password"] or "")
                refused = smtp.send_message(build_message(n, self.sender))
        except smtplib.SMTPRecipientsRefused as e:
            raise DeliveryError("recipient refused: %s" % e.recipients, permanent=_permanent(e.recipients))
        except smtplib.SMTPResponseException as e:
            raise DeliveryError("SMTP %d %s" % (e.smtp_code, _text(e.smtp_error)), permanent=500 <= e.smtp_code < 600)
        except (OSError, smtplib.SMTPException) as e:
            raise DeliveryError("SMTP server unreachable: %s" % (e,))
        if refused:
            raise DeliveryError("recipient refused: %s" % refused, permanent=_permanent(refused))
        return ""


def _text(b):
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)


def _permanent(refused):
    return all(500 <= code < 600 for code, _msg in refused.values())
