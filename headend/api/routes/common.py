"""Response pieces several routers share."""
from typing import Any, Optional

from pydantic import BaseModel


class CommandResult(BaseModel):
    event_id: int
    message: Optional[str] = None
    queued: int
    cmd: Optional[dict[str, Any]] = None


def wake_outbox(request):
    """Downlinks were queued: have the MQTT service publish them now."""
    mqtt = getattr(request.app.state, "mqtt", None)
    if mqtt is not None:
        mqtt.wake()
