"""Errors of the service catalogue."""

from __future__ import annotations

from controlplane.errors import InvalidInput, NotFound


class CatalogInvalid(InvalidInput):
    """The catalogue has errors."""

    title = "Invalid catalogue"
    code = "catalog_invalid"


class ServiceNotInCatalog(NotFound):
    """There is no such service or version in the catalogue."""

    title = "Service not in catalogue"


class VersionInvalid(InvalidInput):
    """The version is not a semantic version (MAJOR.MINOR.PATCH)."""

    title = "Invalid version"
    code = "version_invalid"


class VersionRangeInvalid(InvalidInput):
    """The version range is not a list of comma-separated comparators."""

    title = "Invalid version range"
    code = "version_range_invalid"
