"""What the head-end knows of a board's /config.json: its device id and key,
the `broker` block (TLS and its own credential, from the site's broker
folder written by `wattkeeper broker-config`), the site's meter models and
the property's time zone. `wattkeeper provision concentrator` prints it;
tools/provision adds the meters (the import's `board_meters`), Wi-Fi and
writes the file (docs/deploying.md)."""
from ..core import permissions as P
from ..models import Property
from . import property_settings
from .errors import Invalid


def board_config(session, actor, conc, broker_dir=None):
    """-> (config dict, notes for the person provisioning)."""
    actor.check(P.DEVICES_WRITE, conc.property_id)
    prop = session.get(Property, conc.property_id)
    cfg = {"dev": conc.dev, "key": conc.key_hex, "tz_offset_s": prop.tz_offset_s}
    notes = []
    if broker_dir:
        from ..transport import broker_config as bc
        try:
            block, added = bc.board_broker(broker_dir, conc.dev)
        except bc.BrokerConfigError as e:
            raise Invalid(str(e))
        block.pop("tls", None)          # the board speaks TLS because `ca` is set
        cfg["broker"] = block
        notes.append("copy %s to the board as %s (tools/provision --ca %s)" % (
            _ca(broker_dir), bc.BOARD_CA, _ca(broker_dir)))
        if added:
            notes.append("new broker credential for %s: reload Mosquitto (kill -HUP) to take it" % conc.dev)
    models = property_settings.meter_models(property_settings.of(session, conc.property_id))
    if models:
        cfg["models"] = models
    return cfg, notes


def _ca(broker_dir):
    import os
    from ..transport.broker_config import FILES
    return os.path.join(broker_dir, FILES["ca_cert"])
