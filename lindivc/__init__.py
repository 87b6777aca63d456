"""lindivc: git for LINDI files."""
__version__ = "0.1.0"
