"""Compressor and tda settings by name for the Python API: the same conf/<group>/<name>.yaml files the CLI composes.

The yaml files are found in the installed package (grass/conf, shipped by the wheel) or, in a checkout or an
editable install, in the repository's conf/ folder, so `compressor="factgrass"` means exactly what
`python run.py compressor=factgrass` means.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf

from grass.errors import GrassError
from grass.instantiate import plain_node

CONF_CANDIDATES = (Path(__file__).resolve().parents[1] / "conf", Path(__file__).resolve().parents[2] / "conf")


def conf_dir() -> Path:
    """The folder holding the config groups (compressor/, tda/, ...); GrassError naming the places looked at."""
    for path in CONF_CANDIDATES:
        if (path / "compressor").is_dir():
            return path
    raise GrassError(f"grass's config folder was not found at {' or '.join(map(str, CONF_CANDIDATES))}; "
                     "reinstall grass (the wheel ships it as grass/conf)")


def options(group: str) -> list[str]:
    """The option names of a config group, e.g. options("tda") -> ["grad_dot", "if_efim", "trak"]."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def group_node(group: str, choice: str | Mapping, **overrides) -> dict:
    """The plain config node of `group` option `choice` (a name, or a node mapping used as is), with `overrides`
    (e.g. c=2 for sjlt) set on top. GrassError for an unknown name or an option that is not a key of the node."""
    if isinstance(choice, Mapping):
        node = plain_node(choice)
    else:
        path = conf_dir() / group / f"{choice}.yaml"
        if not path.is_file():
            raise GrassError(f"{group}={choice!r} is not a grass option; choose one of {options(group)}")
        node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)  # learned masks name run paths
    unknown = sorted(set(overrides) - set(node))
    if unknown:
        raise GrassError(f"{group} {node.get('name', choice)!r} has no option(s) {unknown}; its options are "
                         f"{sorted(k for k in node if not k.startswith('_'))}")
    return {**node, **overrides}
