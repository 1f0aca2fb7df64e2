"""BPO knowledge assistant: retrieval, grounded answers, chat UI and CLI.

Importing this package does no work: no model is loaded and no settings are read until a caller asks.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
