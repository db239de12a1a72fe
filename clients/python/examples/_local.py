"""Lets the examples run from a checkout as ``python3 examples/NAME.py``.

* The package is taken from ``../src`` (no install needed; an installed
  ``powerplane-client`` is used when the checkout's copy is absent).
* When the interpreter that started the example has no ``grpc`` module (e.g. a pyenv or
  venv Python without grpcio) and Debian's ``/usr/bin/python3`` is a different one, the
  example runs itself again with that (``python3-grpcio``, ``python3-protobuf``), once.
"""

import os
import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parent.parent / "src"
_DEBIAN_PYTHON = "/usr/bin/python3"
_AGAIN = "_POWERPLANE_CLIENT_EXAMPLE_REEXEC"

if _SRC.is_dir():
    sys.path.insert(0, str(_SRC))

try:
    import grpc  # noqa: F401
    import google.protobuf  # noqa: F401
except ImportError:
    debian = Path(_DEBIAN_PYTHON)
    if _AGAIN not in os.environ and debian.exists() and debian.resolve() != Path(sys.executable).resolve():
        os.environ[_AGAIN] = "1"
        os.execv(_DEBIAN_PYTHON, [_DEBIAN_PYTHON, *sys.argv])
    sys.exit(
        f"{sys.executable} cannot import grpc and google.protobuf: install python3-grpcio and "
        "python3-protobuf (Debian) or `pip install grpcio protobuf`, or run the example with /usr/bin/python3"
    )
