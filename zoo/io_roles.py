"""Which catalog input of a variant is the template crop and which the search crop.

Matched by the input's spatial size against the variant's preprocessing (the catalog names
its inputs freely: ``z``/``x``, ``template``/``search``, ...).
"""
from __future__ import annotations

from zoo.errors import UsageError
from zoo.schema import Variant


def input_roles(variant: Variant) -> dict[str, str]:
    """Catalog input name -> ``template``/``search``, matched by the input's spatial size."""
    pre = variant.preprocessing
    sizes = {"template": pre.template_size, "search": pre.search_size}
    roles: dict[str, str] = {}
    for spec in variant.io.inputs:
        hits = [role for role, size in sizes.items() if spec.shape[-2:] == [size, size] and spec.shape[1] == 3]
        if len(hits) != 1:
            raise UsageError(
                f"{variant.name}: input {spec.name!r} {spec.shape} matches neither the template nor the search "
                f"crop size ({pre.template_size}, {pre.search_size}) unambiguously"
            )
        roles[spec.name] = hits[0]
    if sorted(roles.values()) != ["search", "template"]:
        raise UsageError(f"{variant.name}: expects exactly one template and one search input")
    return roles


def role_inputs(variant: Variant) -> dict[str, str]:
    """``template``/``search`` -> catalog input name (:func:`input_roles` the other way round)."""
    return {role: name for name, role in input_roles(variant).items()}
