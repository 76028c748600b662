"""A driver that only remembers: the reference plugin and test double."""

from pci_passthrough.network.base import NetworkDriver, NetworkSpec


class NoopDriver(NetworkDriver):
    """Keeps the networks in memory, per driver instance.  It knows no
    domain: domain_presence() answers UNKNOWN (the default)."""

    def __init__(self, conf: object = None) -> None:
        super().__init__(conf)  # type: ignore[arg-type]
        self.networks: dict[str, NetworkSpec] = {}

    def ensure_network(self, spec: NetworkSpec) -> bool:
        if self.networks.get(spec.name) == spec:
            return False
        self.networks[spec.name] = spec
        return True

    def delete_network(self, name: str) -> bool:
        return self.networks.pop(name, None) is not None

    def list_networks(self, prefix: str) -> dict[str, NetworkSpec]:
        return {n: s for n, s in self.networks.items()
                if n.startswith(prefix)}
