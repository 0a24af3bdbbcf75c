"""`wattkeeper broker-config`: a locked-down Mosquitto for the site
(transport/broker_config.py does the work)."""
from typing import Optional

import typer
from rich.table import Table

from ..transport import broker_config as bc
from .common import console, fail, session_scope


def provisioned_devices():
    """Every concentrator of the database."""
    from sqlmodel import select

    from ..models import Concentrator
    with session_scope() as s:
        return list(s.exec(select(Concentrator.dev).order_by(Concentrator.dev)).all())


def default_owner():
    """As root: Debian's `mosquitto` user (the broker drops root before it
    reads its password files and key)."""
    import os
    import pwd
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("mosquitto").pw_name
    except KeyError:
        return None


def broker_config(
        out: str = typer.Argument(..., help="folder to write the configuration into"),
        host: list[str] = typer.Option(..., "--host", help="a name or address boards and workers use to reach the "
                                                          "broker (repeat; all go into the certificate)"),
        device: Optional[list[str]] = typer.Option(None, "--device", help="a device id (repeat); default: every "
                                                                        "concentrator of the database"),
        port: int = typer.Option(bc.DEVICE_PORT, help="the boards' TLS listener"),
        bind: str = typer.Option("0.0.0.0", help="address of the boards' listener"),
        headend_port: int = typer.Option(bc.HEADEND_PORT, help="the head-end workers' TLS listener"),
        headend_bind: str = typer.Option("127.0.0.1", help="address of the head-end's listener (keep it private)"),
        headend_user: str = typer.Option(bc.HEADEND_USER, help="the head-end's MQTT user name"),
        conf_dir: Optional[str] = typer.Option(None, help="where Mosquitto will read the files (default: OUT)"),
        rotate: Optional[list[str]] = typer.Option(None, "--rotate", help="give this user a new password (repeat)"),
        key_type: str = typer.Option("ec", help="ec (P-256, light on a board's RAM) or rsa (2048)"),
        new_cert: bool = typer.Option(False, help="issue a new server certificate even if the old one fits"),
        owner: Optional[str] = typer.Option(None, help="the user Mosquitto runs as, given its secret files "
                                                       "(default as root: mosquitto, when that user exists)")):
    """Write a Mosquitto configuration for the site: TLS (a CA and a server
    certificate, generated once), one credential per concentrator and one for
    the head-end, ACLs (a board publishes only wk/<dev>/up and reads only
    wk/<dev>/down), client id bound to the user name, no retained messages.
    Run it again after provisioning boards: existing passwords are kept."""
    devices = list(device) if device else provisioned_devices()
    owner = owner or default_owner()
    try:
        site = bc.write_site(out, devices, host, port=port, headend_port=headend_port, bind=bind,
                             headend_bind=headend_bind, headend_user=headend_user, conf_dir=conf_dir,
                             rotate=rotate or (), key_type=key_type, new_cert=new_cert, owner=owner)
    except bc.BrokerConfigError as e:
        fail(str(e))
    t = Table("file", "what", "")
    what = {"ca_cert": "the site's CA (give it to the boards and the head-end)", "ca_key": "the CA's key (keep it "
            "offline)", "server_cert": "broker certificate for " + ", ".join(site.hosts),
            "server_key": "broker key", "passwd_devices": "%d board credential(s)" % len(site.device_passwords),
            "passwd_headend": "the head-end's credential", "acl_devices": "boards: own topics only",
            "acl_headend": "head-end: every board's topics", "conf": "mosquitto.conf",
            "credentials": "passwords in clear: boards' config.json `broker`, the head-end",
            "env": "WK_MQTT_URL / WK_MQTT_CA_FILE for the head-end"}
    for key in bc.FILES:
        fresh = key in ("ca_cert", "ca_key", "server_cert", "server_key") and key in site.generated
        t.add_row(site.path(key), what[key], "new" if fresh else "")
    console.print(t)
    console.print("Start the broker:  mosquitto -c %s" % site.path("conf"))
    console.print("Head-end settings: %s (secret)" % site.path("env"))
    console.print("Boards: the `broker` entry of each board's config.json is in %s under \"boards\""
                  % site.path("credentials"))
