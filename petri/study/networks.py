"""A study's ``[networks]``: layer lists written once, named by recipes.

```toml
[networks]
lenet = ["flatten", { name = "dense", units = 120 }, "relu", { name = "dense", units = "classes" }]

[variants.lenet]
recipe = { model = "lenet" }      # or { name = "lenet" }; a sweep over models keeps the names as values
```
"""

from __future__ import annotations

import copy

from ..errors import SpecError


def parse_networks(raw, where: str) -> dict[str, list]:
    """The study's [networks]: name -> a layer list; a name may not be a registered model's."""
    from ..models import MODELS

    nets = raw if raw is not None else {}
    if not isinstance(nets, dict) or not all(isinstance(v, list) and v for v in nets.values()):
        raise SpecError(f"{where}: networks: a table of named layer lists, e.g. [networks] lenet = [\"flatten\", ...]")
    clash = [n for n in nets if n in MODELS]
    if clash:
        raise SpecError(f"{where}: networks.{clash[0]}: is a model's name already ({MODELS.known()}); choose another")
    return nets


def use_networks(recipe, networks: dict):
    """A recipe (dict) whose model names one of the study's networks (``"lenet"`` or ``{ name = "lenet" }``)
    gets that layer list. A sweep over models keeps the names as its values (its points read "lenet")
    and each point's recipe is resolved here once the value is set."""
    if not isinstance(recipe, dict) or "model" not in recipe or not networks:
        return recipe
    m = recipe["model"]
    name = m if isinstance(m, str) else m.get("name") if isinstance(m, dict) and set(m) == {"name"} else None
    return recipe | {"model": copy.deepcopy(networks[name])} if name in networks else recipe
