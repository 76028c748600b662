"""A provider name of this host's tree held by a provider of another
tree (a compute node's previous tree, or a stranger's provider):
Placement's provider names are unique, so the host's provider cannot be
created until an operator deletes or renames the holder."""

import dataclasses
import urllib.parse
from collections.abc import Mapping
from typing import Any

from pci_passthrough import exception
from pci_passthrough.placement.client import PlacementClient


@dataclasses.dataclass(frozen=True, slots=True)
class NameTaken:
    """Provider ``name`` of this host is held by provider ``uuid``."""

    name: str
    uuid: str
    root_uuid: str
    parent_uuid: str | None

    @classmethod
    def from_listed(cls, name: str, rp: Mapping[str, Any]) -> "NameTaken":
        """From the holder as GET /resource_providers lists it."""
        parent = rp.get("parent_provider_uuid")
        return cls(name, _text(rp["uuid"]), _text(rp["root_provider_uuid"]),
                   None if parent is None else _text(parent))

    @property
    def problem(self) -> str:
        where = (f"root {self.root_uuid}, parent {self.parent_uuid}"
                 if self.parent_uuid else "itself a root provider")
        return (f"the name is held by provider {self.uuid} ({where}), "
                f"which is not in this host's tree: the host's provider "
                f"cannot be created and its VFs are not offered")

    @property
    def advice(self) -> str:
        return (f"if {self.uuid} is a previous compute node's, delete it "
                f"once no allocation is left on it (openstack resource "
                f"provider delete {self.uuid}); otherwise rename it "
                f"(openstack resource provider set --name NEW-NAME "
                f"{self.uuid}); then run placement sync again")

    def line(self) -> str:
        """One line naming the provider, the holder and what to do."""
        return f"provider {self.name}: {self.problem}; {self.advice}"


def _text(value: object) -> str:
    """A UUID as Placement lists it: a short string, else ValueError."""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ValueError(f"{value!r:.60} is not a provider UUID")
    return value


def name_holder(client: PlacementClient, name: str,
                root: str) -> NameTaken | None:
    """Who holds provider ``name`` outside the tree of ``root``; None
    when nobody does (the name is free, or in that tree).

    :raises PlacementRequestFailed: the answer is not Placement's.
    """
    path = "/resource_providers?name=" + urllib.parse.quote(name, safe="")
    try:
        for rp in client.get(path).body["resource_providers"]:
            if rp["root_provider_uuid"] != root:
                return NameTaken.from_listed(name, rp)
    except (KeyError, TypeError, ValueError) as exc:
        raise exception.PlacementRequestFailed(
            method="GET", path=path, status=200,
            detail=f"an answer not in Placement's format "
                   f"({type(exc).__name__}: {exc})") from None
    return None
