"""Every message and enum of ``powerplane.v1`` in one namespace.

``from powerplane_client import v1`` then ``v1.SubmitDispatchRequest``,
``v1.DispatchInterval``, ``v1.SETPOINT_PHASE_VERIFIED``, ``v1.SetpointPhase.Name(phase)``.
The classes are protoc's (``clients/python/generate.sh``); the comments of
``proto/powerplane/v1/*.proto`` (and docs/api-reference.md) document every field.
"""

from ._gen.auth_pb2 import *  # noqa: F401,F403
from ._gen.devices_pb2 import *  # noqa: F401,F403
from ._gen.dispatch_pb2 import *  # noqa: F401,F403
from ._gen.fleet_pb2 import *  # noqa: F401,F403
from ._gen.readings_pb2 import *  # noqa: F401,F403
from ._gen.telemetry_pb2 import *  # noqa: F401,F403
