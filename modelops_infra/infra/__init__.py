"""The Pulumi layer of modelops-infra: stack config, Azure components, local components.

Importing this package imports no cloud SDK. The Azure components live in
:mod:`modelops_infra.infra.azure` (which imports ``pulumi_azure_native`` and
``pulumi_kubernetes``); the program in :mod:`modelops_infra.infra.program`
imports them only on the Azure path, so the local stack never needs them.
"""

from __future__ import annotations

from modelops_infra.infra.config import StackConfig, load_stack_config, parse_stack_config

__all__ = ["StackConfig", "load_stack_config", "parse_stack_config"]
