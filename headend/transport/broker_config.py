"""A locked-down Mosquitto configuration for a site (`wattkeeper broker-config`).

    site = write_site("/etc/wattkeeper/broker", devices=["c1", "c2"], hosts=["mqtt.example.org"])

writes, in one folder (secrets 0600):

    ca.crt ca.key              a CA of the site (generated once; or bring your own)
    server.crt server.key      the broker's certificate, signed by that CA, for `hosts`
    passwd.devices             one credential per concentrator (user name = device id)
    passwd.headend             the head-end's credential (every worker shares it)
    acl.devices acl.headend    who may publish and subscribe what
    mosquitto.conf             two TLS listeners with per-listener settings (below)
    credentials.json           the passwords in clear: for the boards' config.json and the head-end
    headend.env                WK_MQTT_URL and WK_MQTT_CA_FILE for the head-end's service

The password files are in Mosquitto 2's own format (`$7$`: PBKDF2-HMAC-SHA512,
what mosquitto_passwd writes), so `mosquitto_passwd` can edit them too and
the embedded broker (transport/broker_auth.py) reads the same files.

What the configuration enforces (Mosquitto 2 features used):

* `per_listener_settings true`: the boards' listener (default 8883) and the
  head-end's listener (default 8884, bind it to a private address) each have
  their own password file and ACL, so a board's credential is refused on the
  head-end's listener and the other way round;
* TLS on both (`tls_version tlsv1.2` is the minimum), no plain listener;
* `allow_anonymous false`: anonymous clients and wrong passwords are refused;
* the boards' ACL has only `pattern write wk/%u/up` and `pattern read wk/%u/down`:
  a board publishes only its own uplink and reads only its own downlink (a
  subscription to `#` or to another board's topic delivers nothing);
* `use_username_as_clientid true` on the boards' listener: a board's client id
  is its user name, so one board's credential cannot take over another's session;
* `retain_available false`: a client that sends a retained message is
  disconnected (nothing in the protocol is retained), so nobody leaves a
  retained message on a downlink topic;
* `max_packet_size`: anything much larger than a protocol message is refused.

Running it again keeps the CA, the certificate (unless the host names
changed) and every existing password; new devices get new passwords;
`rotate` gives the named users new ones.
"""
import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
from dataclasses import dataclass, field

from concentrator import protocol

from ..models.concentrator import DEV_PATTERN

HEADEND_USER = "wk-headend"
BOARD_CA = "/ca.pem"          # where a board keeps the site's CA (its config.json broker.ca)
DEVICE_PORT = 8883
HEADEND_PORT = 8884
# a protocol message is at most protocol.MAX_MESSAGE bytes; room for the topic and the MQTT header
MAX_PACKET = protocol.MAX_MESSAGE + 1024
PBKDF2_ITERATIONS = 101      # Mosquitto 2's default for sha512-pbkdf2
CERT_DAYS = 3650
SERVER_CERT_DAYS = 825

FILES = {
    "ca_cert": "ca.crt", "ca_key": "ca.key", "server_cert": "server.crt", "server_key": "server.key",
    "passwd_devices": "passwd.devices", "passwd_headend": "passwd.headend",
    "acl_devices": "acl.devices", "acl_headend": "acl.headend",
    "conf": "mosquitto.conf", "credentials": "credentials.json", "env": "headend.env",
}
# the secret files Mosquitto itself reads (after dropping root: see `owner`)
BROKER_READS = ("server_key", "passwd_devices", "passwd_headend")
_DEV_RE = re.compile(DEV_PATTERN)


class BrokerConfigError(ValueError):
    pass


# ------------------------------------------------------------------ passwords
def mosquitto_hash(password, salt=None, iterations=PBKDF2_ITERATIONS):
    """The password as Mosquitto 2 stores it: `$7$<iterations>$<salt b64>$<hash b64>`."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return "$7$%d$%s$%s" % (iterations, base64.b64encode(salt).decode(), base64.b64encode(digest).decode())


def verify_mosquitto_hash(password, stored):
    """True when `password` matches a `$7$` (PBKDF2-SHA512) or `$6$` (salted
    SHA-512) entry of a Mosquitto password file."""
    try:
        parts = stored.split("$")
        if len(parts) == 5 and parts[1] == "7":
            iterations = int(parts[2])
            if not 1 <= iterations <= 10 ** 6:
                return False
            salt, want = base64.b64decode(parts[3]), base64.b64decode(parts[4])
            got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
        elif len(parts) == 4 and parts[1] == "6":
            salt, want = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            got = hashlib.sha512(password.encode() + salt).digest()
        else:
            return False
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def read_password_file(path):
    """{user: stored hash} of a Mosquitto password file."""
    users = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and ":" in line:
                user, stored = line.split(":", 1)
                users[user] = stored
    return users


def password_file_text(passwords):
    """{user: clear password} -> the lines of a Mosquitto password file."""
    return "".join("%s:%s\n" % (u, mosquitto_hash(p)) for u, p in sorted(passwords.items()))


def new_password():
    return secrets.token_urlsafe(24)


# ----------------------------------------------------------------------- ACLs
def device_acl_text():
    return ("# Wattkeeper boards (written by `wattkeeper broker-config`): the user name is the device id;\n"
            "# a board publishes only its own uplink and reads only its own downlink.\n"
            "pattern write %s\n"
            "pattern read %s\n" % (protocol.topic_up("%u"), protocol.topic_down("%u")))


def headend_acl_text(headend_user=HEADEND_USER):
    return ("# The Wattkeeper head-end (written by `wattkeeper broker-config`): every worker reads every\n"
            "# board's uplink (also as the shared subscription $share/<group>/wk/+/up) and writes every\n"
            "# board's downlink.\n"
            "user %s\n"
            "topic read %s\n"
            "topic write %s\n" % (headend_user, protocol.topic_up("+"), protocol.topic_down("+")))


def check_device_id(dev, headend_user=HEADEND_USER):
    if not isinstance(dev, str) or not _DEV_RE.match(dev):
        raise BrokerConfigError("device id %r: letters, digits, '-' and '_' only (1 to 64)" % (dev,))
    if dev == headend_user:
        raise BrokerConfigError("device id %r is the head-end's user name" % dev)
    return dev


# ---------------------------------------------------------------- certificates
def _name(common_name):
    from cryptography.x509.oid import NameOID
    from cryptography import x509
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Wattkeeper"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _new_key(kind):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise BrokerConfigError("key type must be ec or rsa, not %r" % kind)


def _pem_key(key):
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert):
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM)


def generate_ca(common_name="Wattkeeper site CA", key_type="ec", days=CERT_DAYS):
    """-> (certificate PEM, key PEM) of a new CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    key = _new_key(key_type)
    now = datetime.datetime.now(datetime.timezone.utc)
    name = _name(common_name)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return _pem_cert(cert), _pem_key(key)


def _san(hosts):
    from cryptography import x509
    names = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def generate_server_cert(ca_cert_pem, ca_key_pem, hosts, key_type="ec", days=SERVER_CERT_DAYS):
    """-> (certificate PEM, key PEM) for the broker, valid for every name
    and address in `hosts`, signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID
    if not hosts:
        raise BrokerConfigError("give at least one host name or address of the broker")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = _new_key(key_type)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _pem_cert(cert), _pem_key(key)


def cert_hosts(cert_pem):
    """The names and addresses a certificate is valid for."""
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + \
        [str(v) for v in san.get_values_for_type(x509.IPAddress)]


# ----------------------------------------------------------------- the config
@dataclass
class Listener:
    port: int
    bind: str


@dataclass
class SiteBroker:
    """What write_site() wrote: where, and the credentials in it."""
    out_dir: str
    conf_dir: str              # where mosquitto.conf says the files are
    hosts: list
    devices_listener: Listener
    headend_listener: Listener
    headend_user: str
    headend_password: str
    device_passwords: dict = field(default_factory=dict)
    generated: list = field(default_factory=list)   # files (re)generated by this run

    def path(self, what):
        return os.path.join(self.out_dir, FILES[what])

    def headend_url(self, host=None, port=None, tls=True):
        """WK_MQTT_URL for the head-end (default: its own listener, TLS)."""
        return mqtt_url(self.headend_user, self.headend_password, host or self.hosts[0],
                        port or self.headend_listener.port, tls)

    def board_broker(self, dev, host=None):
        """The `broker` entry of board `dev`'s config.json (the CA file, ca.crt
        here, goes onto the board as BOARD_CA: `tools/provision --ca`)."""
        return {"host": host or self.hosts[0], "port": self.devices_listener.port, "user": dev,
                "password": self.device_passwords[dev], "tls": True, "ca": BOARD_CA}


def mqtt_url(user, password, host, port, tls=True):
    """mqtt[s]://user:password@host:port (quoted)."""
    from urllib.parse import quote
    return "%s://%s:%s@%s:%d" % ("mqtts" if tls else "mqtt", quote(user, safe=""), quote(password, safe=""),
                                 host, port)


def mosquitto_conf_text(conf_dir, devices, headend):
    """mosquitto.conf for the two listeners; file paths are under conf_dir."""
    p = lambda what: os.path.join(conf_dir, FILES[what])  # noqa: E731
    tls = ("cafile %s\ncertfile %s\nkeyfile %s\ntls_version tlsv1.2\n"
           % (p("ca_cert"), p("server_cert"), p("server_key")))
    return (
        "# Wattkeeper site broker, written by `wattkeeper broker-config` (docs/deploying.md).\n"
        "# Mosquitto 2: per-listener authentication, TLS only, no anonymous clients,\n"
        "# ACLs per device, client id = user name for boards, no retained messages.\n"
        "per_listener_settings true\n"
        "retain_available false\n"
        "max_packet_size %d\n"
        "persistence false\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        "connection_messages true\n"
        "\n# the concentrators\n"
        "listener %d %s\n"
        "protocol mqtt\n%s"
        "allow_anonymous false\n"
        "use_username_as_clientid true\n"
        "password_file %s\n"
        "acl_file %s\n"
        "\n# the head-end's workers (bind to a private address)\n"
        "listener %d %s\n"
        "protocol mqtt\n%s"
        "allow_anonymous false\n"
        "password_file %s\n"
        "acl_file %s\n"
        % (MAX_PACKET, devices.port, devices.bind, tls, p("passwd_devices"), p("acl_devices"),
           headend.port, headend.bind, tls, p("passwd_headend"), p("acl_headend")))


def _write(path, data, secret=False):
    if isinstance(data, str):
        data = data.encode()
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600 if secret else 0o644)
    os.replace(tmp, path)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def write_site(out_dir, devices, hosts, port=DEVICE_PORT, headend_port=HEADEND_PORT, bind="0.0.0.0",
               headend_bind="127.0.0.1", headend_user=HEADEND_USER, conf_dir=None, rotate=(),
               key_type="ec", new_cert=False, owner=None, passwords=None):
    """Write (or bring up to date) the broker configuration of a site in
    out_dir. `devices`: device ids (every provisioned concentrator);
    `hosts`: the names and addresses boards and workers use to reach the
    broker (in the server certificate); `conf_dir`: where the files will be
    when Mosquitto reads them (default out_dir); `rotate`: users that get a
    new password; `passwords`: {device id: password} to use as they are
    (the simulator's boards); `owner`: the user Mosquitto runs as (it drops root before
    reading its files), given the secret files it reads. -> SiteBroker."""
    hosts = [h for h in dict.fromkeys(hosts or []) if h]
    if not hosts:
        raise BrokerConfigError("give the broker's host name or address (--host), as the boards reach it")
    if not _DEV_RE.match(headend_user):
        raise BrokerConfigError("head-end user name %r: letters, digits, '-' and '_' only" % headend_user)
    devices = sorted({check_device_id(d, headend_user) for d in devices})
    for port_ in (port, headend_port):
        if not 1 <= int(port_) <= 65535:
            raise BrokerConfigError("port %r is not a TCP port" % (port_,))
    if port == headend_port and bind == headend_bind:
        raise BrokerConfigError("the boards' and the head-end's listeners need different ports")
    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)
    conf_dir = conf_dir or out_dir
    path = lambda what: os.path.join(out_dir, FILES[what])  # noqa: E731
    generated = []

    if not (os.path.exists(path("ca_cert")) and os.path.exists(path("ca_key"))):
        cert, key = generate_ca(key_type=key_type)
        _write(path("ca_key"), key, secret=True)
        _write(path("ca_cert"), cert)
        generated += ["ca_cert", "ca_key"]
        new_cert = True
    if (new_cert or not os.path.exists(path("server_cert")) or not os.path.exists(path("server_key"))
            or sorted(cert_hosts(_read(path("server_cert")))) != sorted(str(h) for h in _normal_hosts(hosts))):
        cert, key = generate_server_cert(_read(path("ca_cert")), _read(path("ca_key")), hosts, key_type=key_type)
        _write(path("server_key"), key, secret=True)
        _write(path("server_cert"), cert)
        generated += ["server_cert", "server_key"]

    old = {}
    if os.path.exists(path("credentials")):
        old = json.loads(_read(path("credentials")).decode())
    rotate = set(rotate)
    old_devices = old.get("devices", {})
    given = passwords or {}
    device_passwords = {d: given.get(d) or (old_devices[d] if d in old_devices and d not in rotate
                                            else new_password()) for d in devices}
    old_he = old.get("headend", {})
    headend_password = (old_he["password"] if old_he.get("username") == headend_user and headend_user not in rotate
                        else new_password())

    site = SiteBroker(out_dir=out_dir, conf_dir=conf_dir, hosts=hosts,
                      devices_listener=Listener(int(port), bind), headend_listener=Listener(int(headend_port),
                                                                                             headend_bind),
                      headend_user=headend_user, headend_password=headend_password,
                      device_passwords=device_passwords, generated=generated)
    _write(path("passwd_devices"), password_file_text(device_passwords), secret=True)
    _write(path("passwd_headend"), password_file_text({headend_user: headend_password}), secret=True)
    _write(path("acl_devices"), device_acl_text())
    _write(path("acl_headend"), headend_acl_text(headend_user))
    _write(path("conf"), mosquitto_conf_text(conf_dir, site.devices_listener, site.headend_listener))
    creds = {"headend": {"username": headend_user, "password": headend_password,
                         "url": site.headend_url()},
             "devices": device_passwords,
             "boards": {d: site.board_broker(d) for d in devices}}
    _write(path("credentials"), json.dumps(creds, indent=1, sort_keys=True) + "\n", secret=True)
    _write(path("env"), "WK_MQTT_URL=%s\nWK_MQTT_CA_FILE=%s\nWK_MQTT_SHARED=1\n"
           % (site.headend_url(), os.path.join(conf_dir, FILES["ca_cert"])), secret=True)
    generated += ["passwd_devices", "passwd_headend", "acl_devices", "acl_headend", "conf", "credentials", "env"]
    if owner:
        import pwd
        uid = pwd.getpwnam(owner).pw_uid
        for what in BROKER_READS:
            os.chown(path(what), uid, -1)
    return site


def read_credentials(out_dir):
    """credentials.json of a folder write_site() wrote, or None."""
    p = os.path.join(out_dir, FILES["credentials"])
    if not os.path.exists(p):
        return None
    return json.loads(_read(p).decode())


def board_broker(out_dir, dev):
    """The `broker` entry of board `dev`'s config.json from the site's broker
    folder (written by `wattkeeper broker-config`). A device the folder does
    not know yet gets its credential now (passwd.devices and credentials.json
    are updated, the other passwords, the certificates and mosquitto.conf stay
    as they are; reload Mosquitto: `kill -HUP`). -> (block, added)."""
    creds = read_credentials(out_dir)
    if creds is None or not creds.get("boards"):
        raise BrokerConfigError("no broker configuration with a board in %s: run `wattkeeper broker-config %s "
                                "--host ...` first" % (out_dir, out_dir))
    dev = check_device_id(dev, (creds.get("headend") or {}).get("username", HEADEND_USER))
    boards = creds["boards"]
    if dev in boards:
        block = dict(boards[dev])
        block["ca"] = BOARD_CA
        return block, False
    like = boards[sorted(boards)[0]]
    block = {"host": like["host"], "port": like["port"], "user": dev, "password": new_password(),
             "tls": True, "ca": BOARD_CA}
    creds.setdefault("devices", {})[dev] = block["password"]
    boards[dev] = block
    passwd = os.path.join(out_dir, FILES["passwd_devices"])
    owner = os.stat(passwd) if os.path.exists(passwd) else None
    _write(passwd, password_file_text(creds["devices"]), secret=True)
    if owner is not None and os.geteuid() == 0:
        os.chown(passwd, owner.st_uid, owner.st_gid)     # Mosquitto's user reads it
    _write(os.path.join(out_dir, FILES["credentials"]), json.dumps(creds, indent=1, sort_keys=True) + "\n",
           secret=True)
    return dict(block), True


def ensure_site(out_dir, devices, host):
    """The embedded broker's credentials: the folder as it is when
    `wattkeeper broker-config` (or an earlier start) wrote it, else a new one
    for `devices` reached at `host`. -> (password files, head-end user, password)."""
    creds = read_credentials(out_dir)
    if creds is None:
        write_site(out_dir, devices, [host])
        creds = read_credentials(out_dir)
    files = [os.path.join(out_dir, FILES["passwd_devices"]), os.path.join(out_dir, FILES["passwd_headend"])]
    return files, creds["headend"]["username"], creds["headend"]["password"]


def _normal_hosts(hosts):
    out = []
    for h in hosts:
        try:
            out.append(str(ipaddress.ip_address(h)))
        except ValueError:
            out.append(h)
    return out
