"""City Platform control plane: provisions cost-shared application stacks for municipalities."""

__version__ = "0.1.0"
