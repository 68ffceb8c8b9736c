"""AcrPull role assignments with deterministic names, shared by AKS and the workspace."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import authorization

from modelops_infra.infra.naming import role_assignment_name

__all__ = ["ACR_PULL_ROLE_GUID", "acr_pull_assignment", "role_definition_id"]

#: Azure's built-in ``AcrPull`` role definition.
ACR_PULL_ROLE_GUID = "7f951dda-4ed3-4680-a7ca-43fe172d538d"


def role_definition_id(subscription_id: str, role_guid: str = ACR_PULL_ROLE_GUID) -> str:
    """The subscription-scoped resource id of a built-in role definition."""
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"


def acr_pull_assignment(
    name: str,
    *,
    scope: pulumi.Input[str],
    principal_id: pulumi.Input[str],
    parent: pulumi.Resource,
) -> authorization.RoleAssignment:
    """Grant ``AcrPull`` on ``scope`` (a registry id) to a service principal.

    The assignment's name is a uuid5 of (scope, principal, role), so re-running
    the program never tries to create a duplicate grant.
    """
    client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=parent))
    role_id = client.subscription_id.apply(role_definition_id)
    guid = pulumi.Output.all(scope, principal_id, role_id).apply(lambda v: role_assignment_name(v[0], v[1], v[2]))
    return authorization.RoleAssignment(
        name,
        role_assignment_name=guid,
        scope=scope,
        principal_id=principal_id,
        principal_type="ServicePrincipal",
        role_definition_id=role_id,
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
    )
