"""Orchestra: run teams of specialised AI coding agents with engineering discipline."""

from orchestra.errors import OrchestraError

__version__ = "0.1.0"

__all__ = ["OrchestraError", "__version__"]
