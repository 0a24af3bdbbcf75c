"""MQTT: the client the head-end talks through, the embedded broker of the
demo, downlink sealing and counters, and the downlink outbox."""
