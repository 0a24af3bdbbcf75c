"""Event codes and their texts: the board's (1..99, concentrator.protocol)
and the head-end's own (100 and up)."""
from concentrator import protocol

# the head-end's own event codes
EV_UPLINK_REJECTED = 100   # detail = index in protocol.REJECT_REASONS
EV_BAD_RECORD = 101        # a record that failed check_record (stored to keep seqs contiguous)
EV_NOT_BILLED = 102        # reading not billed (register went backwards, ...)
EV_METER_LIST = 103        # board's meter list differs from the head-end's
EV_JOURNAL_RESET = 104     # board's journal is behind what the head-end committed
EV_BILLING_MISMATCH = 105  # the board's charged_mu delta differs from the head-end's charge
EV_COMMAND = 106           # a command sent to a board (user_id = who asked)
EV_REKEYED = 107           # a board switched to its new key
EV_ROLLOUT_STOPPED = 115   # a firmware rollout stopped (detail = rollout id)
EV_OUT_OF_RANGE = 108      # a record or field outside ingest.bounds: refused / ignored
EV_LOW_BALANCE = protocol.EV_LOW_CREDIT

_EVENT_TEXT = {
    protocol.EV_BOOT: "boot",
    protocol.EV_RELAY_OPEN: "relay opened",
    protocol.EV_RELAY_CLOSE: "relay closed",
    protocol.EV_RELAY_MISMATCH: "relay read-back mismatch",
    protocol.EV_METER_OFFLINE: "meter offline",
    protocol.EV_METER_ONLINE: "meter online",
    protocol.EV_JOURNAL_THINNED: "journal thinned",
    protocol.EV_MSG_REJECTED: "downlink rejected",
    protocol.EV_IMPLAUSIBLE: "implausible delta",
    protocol.EV_LOW_CREDIT: "low credit",
    protocol.EV_OVERRIDE: "override",
    protocol.EV_TIME_SET: "clock set from the head-end",
    protocol.EV_REKEY: "device key rotated",
    protocol.EV_STATE_REJECTED: "part of the saved state refused at boot (defaults used)",
    protocol.EV_OTA: "firmware update",
    protocol.EV_TAMPER: "meter tamper detected",
    protocol.EV_COVER_OPEN: "meter terminal cover opened",
    EV_UPLINK_REJECTED: "uplink rejected",
    EV_BAD_RECORD: "malformed record",
    EV_NOT_BILLED: "reading not billed",
    EV_METER_LIST: "meter list",
    EV_JOURNAL_RESET: "board journal behind the head-end",
    EV_BILLING_MISMATCH: "billing mismatch",
    EV_COMMAND: "command",
    EV_REKEYED: "rekey complete",
    EV_ROLLOUT_STOPPED: "firmware rollout stopped",
    EV_OUT_OF_RANGE: "value out of range",
}
REJECT_TEXT = {
    "malformed": "not a well-formed message",
    "too_long": "longer than %d bytes" % protocol.MAX_MESSAGE,
    "bad_mac": "signature does not verify with the board's key",
    "wrong_device": "addressed to another device",
    "replay": "counter not above the last one accepted",
    "expired": "command past its expiry time",
    "unknown_device": "unknown device",
    "bad_fields": "fields missing or invalid",
}
OTA_TEXT = {protocol.OTA_STAGED: "staged, switches at the next boot",
            protocol.OTA_SWITCHED: "switched, health check running",
            protocol.OTA_CONFIRMED: "confirmed: the new version stays",
            protocol.OTA_ROLLED_BACK: "rolled back to the previous version",
            protocol.OTA_REFUSED: "bundle refused (signature or hash)",
            protocol.OTA_ABANDONED: "abandoned (replaced or cancelled)"}
RELAY_REASON = {protocol.R_CREDIT: "credit", protocol.R_OVERRIDE: "staff override",
                protocol.R_TECHNICIAN: "technician", protocol.R_LOAD_LIMIT: "load limit",
                protocol.R_BOOT: "boot"}


def describe_event(code, detail, values=()):
    """What an event means, for people. `values`: the record's values
    ([code, detail, more...])."""
    text = _EVENT_TEXT.get(code, "event %d" % code)
    if code in (protocol.EV_RELAY_OPEN, protocol.EV_RELAY_CLOSE) and detail in RELAY_REASON:
        text += " (%s)" % RELAY_REASON[detail]
    elif code == protocol.EV_MSG_REJECTED:
        if isinstance(detail, int) and 0 <= detail < len(protocol.REJECT_REASONS):
            reason = protocol.REJECT_REASONS[detail]
            text = "downlink rejected by the board: %s (%s)" % (reason, REJECT_TEXT.get(reason, ""))
        else:
            text = "downlink rejected by the board (reason %r)" % (detail,)
        count = values[2] if len(values) > 2 and isinstance(values[2], int) else None
        if count is not None and count > 1:
            text += ", %d messages" % count
    elif code == protocol.EV_OTA and detail in OTA_TEXT:
        text += ": " + OTA_TEXT[detail]
    elif code == protocol.EV_STATE_REJECTED and isinstance(detail, int) and 0 <= detail < len(protocol.STATE_PARTS):
        text += ": " + protocol.STATE_PARTS[detail]
    return text
