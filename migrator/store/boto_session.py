"""A boto3 session whose first client starts in a third of the time.

Every mover Job, and every ``migrator volumes`` command, is a fresh process whose first S3
client costs botocore ~0.15-0.25 s before a request leaves (measured on the 2-core
development machine): most of it parsing the S3 model and endpoint rules (several MB of
JSON, through the standard library with an ``OrderedDict`` for every object), the rest
listing every service botocore knows (~400 directories, ~2,800 ``stat`` calls) to check
that ``s3`` is one of them. An incremental pass of a quiet volume takes about as long.

This session's data loader is botocore's own with two changes: its JSON files are parsed
with orjson (plain dicts, which keep their order as ``OrderedDict`` did), and whether a
service exists is asked of its own directory rather than of a listing of all of them (the
full listing is still made when something iterates over it). Everything else is
botocore's: the same files, search paths, extras and caching.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import orjson


class _JSONFiles(botocore.loaders.JSONFileLoader):
    """botocore's JSON file loader, parsing with orjson."""

    def _load_file(self, full_path: str, open_method: Any) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as stream:
            return orjson.loads(stream.read())


class _Services:
    """The services a loader knows, as a container: membership looks at one directory."""

    def __init__(self, loader: _Loader, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            return False
        return any(os.path.isdir(os.path.join(path, name)) for path in self._loader.search_paths)

    def __iter__(self) -> Iterator[str]:
        return iter(self._loader.all_services(self._type_name))


class _Loader(botocore.loaders.Loader):
    """botocore's data loader, with :class:`_JSONFiles` and :class:`_Services`."""

    def list_available_services(self, type_name: str) -> Any:
        return _Services(self, type_name)

    def all_services(self, type_name: str) -> list[str]:
        """Every service botocore knows (the full listing)."""
        listed: list[str] = super().list_available_services(type_name)
        return listed


def quick_session(**kwargs: Any) -> boto3.session.Session:
    """A boto3 session (``kwargs`` as boto3's) with the quicker data loader."""
    core = botocore.session.Session()
    core.register_component("data_loader", _Loader(file_loader=_JSONFiles()))
    return boto3.session.Session(botocore_session=core, **kwargs)
