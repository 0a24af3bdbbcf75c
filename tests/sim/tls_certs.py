"""A throw-away certificate authority for TLS tests, made with openssl: a CA
and a server certificate for 127.0.0.1 / localhost signed by it."""
import os
import subprocess


def _ossl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_ca(folder, name="wk test CA"):
    """-> {"ca": ca.pem, "ca_der": ca.der, "cert": server.pem, "key": server.key} in folder."""
    os.makedirs(folder, exist_ok=True)
    os.chmod(folder, 0o755)        # mosquitto reads them after dropping root
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
          "-subj", "/CN=" + name, cwd=folder)
    _ossl("x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der", cwd=folder)
    _ossl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
          cwd=folder)
    with open(os.path.join(folder, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
          "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=folder)
    os.chmod(os.path.join(folder, "server.key"), 0o644)   # mosquitto may run as another user
    return {k: os.path.join(folder, v) for k, v in
            (("ca", "ca.pem"), ("ca_der", "ca.der"), ("cert", "server.pem"), ("key", "server.key"))}


def tls_listener(port, files, host="127.0.0.1"):
    """Mosquitto configuration lines for a TLS listener."""
    return ("listener %d %s\ncafile %s\ncertfile %s\nkeyfile %s\n"
            % (port, host, files["ca"], files["cert"], files["key"]))
