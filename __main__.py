"""Pulumi entry point of the ``modelops`` project.

Thin on purpose: the program lives in :mod:`modelops_infra.infra.program`,
which reads the typed ``modelops:`` stack config and composes the components
(``modelops:cloud`` picks Azure or the local stack).
"""

from __future__ import annotations

from modelops_infra.infra.program import main

main()
