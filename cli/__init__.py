"""cityctl: the self-service CLI of City Platform. It speaks HTTP only."""

__version__ = "0.1.0"
