"""The ``a2065`` command (``a2065 demo|replay|inspect|bridge|bench``); see ``main``."""
from .main import main

__all__ = ["main"]
