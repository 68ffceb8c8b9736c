"""``ContainerRegistry``: an Azure Container Registry for bundles and worker images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random
from pulumi_azure_native import containerregistry, resources

from modelops_infra.errors import ConfigurationError
from modelops_infra.infra.config import REGISTRY_SKUS, RegistryConfig
from modelops_infra.infra.naming import registry_name

__all__ = ["ContainerRegistry", "ContainerRegistryArgs"]



@dataclass
class ContainerRegistryArgs:
    """Inputs of :class:`ContainerRegistry`.

    ``resource_group_name`` names an existing resource group to use; ``None``
    creates one. ``project`` and ``stack`` seed the registry's physical name
    (they default to the running project and stack). The defaults are those of
    ``modelops:registry``; :meth:`from_config` takes all of it.
    """

    sku: str = RegistryConfig().sku
    resource_group_name: pulumi.Input[str] | None = RegistryConfig().resource_group
    location: pulumi.Input[str] | None = None
    project: str | None = None
    stack: str | None = None
    tags: dict[str, str] | None = None

    @classmethod
    def from_config(cls, registry: RegistryConfig, **args: Any) -> ContainerRegistryArgs:
        """The Args of ``modelops:registry`` (``registry``), plus ``args`` (``project``, ``tags``, ...)."""
        return cls(**{"sku": registry.sku, "resource_group_name": registry.resource_group, **args})


class ContainerRegistry(pulumi.ComponentResource):
    """A resource group (created or given) and an ACR with the admin user disabled.

    The registry name is ``<project><stack><suffix>`` (5-50 alphanumerics) with
    a random suffix kept in state, so it is stable across updates yet unlikely
    to collide globally. Pulls and pushes authenticate with Entra ID (AcrPull /
    AcrPush role assignments), never with the admin password.

    Outputs: ``login_server``, ``registry_id``, ``registry_name``,
    ``resource_group_name``.

    Raises :class:`ConfigurationError` for an unknown SKU, before creating anything.
    """

    login_server: pulumi.Output[str]
    registry_id: pulumi.Output[str]
    registry_name: pulumi.Output[str]
    resource_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: ContainerRegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.sku not in REGISTRY_SKUS:
            raise ConfigurationError(
                f"ContainerRegistry {name!r}: unknown SKU {args.sku!r}; expected one of {', '.join(REGISTRY_SKUS)}",
                key="sku",
            )
        super().__init__("modelops:infra:ContainerRegistry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project = args.project or pulumi.get_project()
        stack = args.stack or pulumi.get_stack()

        if args.resource_group_name is None:
            group = resources.ResourceGroup(f"{name}-rg", location=args.location, tags=args.tags, opts=child)
            rg_name: pulumi.Input[str] = group.name
        else:
            rg_name = args.resource_group_name

        suffix = random.RandomString(
            f"{name}-suffix", length=6, special=False, upper=False, numeric=True, opts=child
        )
        physical_name = suffix.result.apply(lambda s: registry_name(project, stack, s))

        registry = containerregistry.Registry(
            f"{name}-acr",
            registry_name=physical_name,
            resource_group_name=rg_name,
            location=args.location,
            sku={"name": args.sku},
            admin_user_enabled=False,
            tags=args.tags,
            # A fixed physical name cannot be created twice: delete first on replace.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )

        self.login_server = registry.login_server
        self.registry_id = registry.id
        self.registry_name = registry.name
        self.resource_group_name = pulumi.Output.from_input(rg_name)
        self.register_outputs(
            {
                "login_server": self.login_server,
                "registry_id": self.registry_id,
                "registry_name": self.registry_name,
                "resource_group_name": self.resource_group_name,
            }
        )
