"""botocore's loader of its model files, made cheaper to start: the fixed cost of an S3 client.

Making an S3 client reads about 3.5 MB of botocore's JSON (the S3 model, its endpoint rules, the
endpoint list) and lists every service botocore knows (about 400 directories) twice, to check that
"s3" is one of them: together about 80 ms of a push that has nothing to send. :func:`data_loader`
gives a botocore ``Loader`` that loads the same files from the same search path (``AWS_DATA_PATH``
included), parsed by orjson, and answers "is this service known" by looking at that service's own
directory only; the full list is still built for whoever asks for all of it.
"""
from __future__ import annotations

import gzip
import os
from collections.abc import Sequence

import orjson
from botocore.exceptions import DataNotFoundError
from botocore.loaders import JSONFileLoader, Loader

JSON_OPENERS = ((".json", open), (".json.gz", gzip.open))  # botocore's extensions, in its order


class OrjsonFileLoader(JSONFileLoader):
    """botocore's JSON file loader, parsing with orjson (plain dicts, which keep the file's order)."""

    def load_file(self, file_path: str):
        """The data of ``file_path`` + ``.json`` or ``.json.gz`` (the first that exists), or None."""
        for ext, opener in JSON_OPENERS:
            if os.path.isfile(file_path + ext):
                with opener(file_path + ext, "rb") as f:
                    return orjson.loads(f.read())
        return None


class KnownServices(Sequence):
    """The services that have a ``type_name`` model, as ``Loader.list_available_services`` lists
    them; ``name in`` looks at that one service's directory, the full list is built on first use."""

    def __init__(self, loader: ZoneDataLoader, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name
        self._all: list[str] | None = None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not name or name.startswith(".") or "/" in name or os.sep in name:
            return False
        try:
            self._loader.list_api_versions(name, self._type_name)
        except DataNotFoundError:
            return False
        return True

    def _list(self) -> list[str]:
        if self._all is None:
            self._all = Loader.list_available_services(self._loader, self._type_name)
        return self._all

    def __getitem__(self, i):
        return self._list()[i]

    def __len__(self) -> int:
        return len(self._list())


class ZoneDataLoader(Loader):
    """botocore's ``Loader`` with orjson parsing and a lazy list of known services."""

    def list_available_services(self, type_name: str) -> KnownServices:  # type: ignore[override]
        return KnownServices(self, type_name)


def data_loader(data_path: str | None = None) -> ZoneDataLoader:
    """A loader searching ``data_path`` (``AWS_DATA_PATH``'s form: directories joined by
    ``os.pathsep``) before botocore's own data, as botocore's ``create_loader`` does."""
    extra = None
    if data_path is not None:
        extra = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)]
    return ZoneDataLoader(extra_search_paths=extra, file_loader=OrjsonFileLoader())
