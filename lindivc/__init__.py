"""lindivc: git for LINDI files."""
__version__ = "0.3.1"


def open(path: str, mode: str = "r"):
    """Open the working LINDI file at ``path`` as an h5py-compatible file.

    ``mode`` is "r" (read; data of cloned files is read from their zone) or "r+" (edit: chunks
    at or above the repository's size threshold become objects in ``.lindivc/objects``; the
    working file is written back on close and stays readable by plain lindi).
    """
    from .repo import Repository

    return Repository.find(path).open(path, mode)
