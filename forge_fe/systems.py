"""Tenstorrent systems as meshes of chips: shapes, ethernet links and topology per mesh axis.

A `Mesh` is a logical 2-D grid of chips (rows, cols) on one `System`. Its axes are named
"x" (axis 0, the rows: cluster_axis 0 in TTIR) and "y" (axis 1, cluster_axis 1), in mesh-shape
order as tt-mlir's tests name them (`sdy.mesh @mesh = <["x"=1, "y"=8]>`). Chip c sits at
(c // cols, c % cols).

Link numbers (docs/mesh.md has the table and the reasoning):

* Wormhole: 16 ethernet cores per chip, each link 100 Gbps per direction = 12.5 GB/s
  (tt-metal tech_reports/EthernetMultichip/BasicEthernetGuide.md, "Ethernet Link", "Galaxy").
  n300: two links between its chips, one reserved for the dispatcher, so 1 usable (same guide,
  "N300"). T3000: four n300 cabled as a 2x4 grid, two links per neighbouring pair
  (tt-metal tests/tt_metal/tt_fabric/custom_mock_cluster_descriptors/t3k_cluster_desc.yaml), the
  n300-internal hops keep one link for the dispatcher (guide, "T3000"), so a ring or a row of 4
  is bound by 1 link; its columns (external cables) have 2. Galaxy: a 4x8 mesh with four links per
  neighbouring pair (6u_cluster_desc.yaml in the same folder), not wrapped into a torus.
  Per-hop latency ~650 ns (guide, "Ring Ping Latency").
* Blackhole: ethernet tiles of 400 GbE = 50 GB/s per direction, two per QSFP-DD port
  (tt-isa-documentation BlackholeA0/README.md); p150 cards are cabled 1 cable (2 links) per
  neighbouring pair in the 1x2 and 2x4 configurations and 2 cables per pair in the ring of four
  (docs.tenstorrent.com aibs/blackhole/multi-card-topologies). p300 (two chips on one board):
  no published chip-to-chip link count; we assume 2 links (marked est.).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from forge_fe.errors import ForgeError

AXIS_NAMES = ("x", "y")
WORMHOLE_LINK_BPS = 100e9 / 8          # 12.5 GB/s per direction per link
BLACKHOLE_LINK_BPS = 400e9 / 8         # 50 GB/s per direction per link
HOP_LATENCY_S = 650e-9


@dataclass(frozen=True)
class Axis:
    topology: str          # "ring" (the axis closes into a cycle) or "line"
    links: int             # usable ethernet links between neighbouring chips on this axis (slowest hop)


@dataclass(frozen=True)
class System:
    name: str
    arch: str
    chips: int
    link_bytes_per_s: float                     # one link, one direction
    meshes: dict                                # logical mesh shape -> (Axis for axis 0, Axis for axis 1)
    note: str = ""


_LINE1 = Axis("line", 0)       # an axis of one chip has no links


def _wh(name, chips, meshes, note=""):
    return System(name, "wormhole_b0", chips, WORMHOLE_LINK_BPS, meshes, note)


def _bh(name, chips, meshes, note=""):
    return System(name, "blackhole", chips, BLACKHOLE_LINK_BPS, meshes, note)


SYSTEMS: dict[str, System] = {s.name: s for s in [
    _wh("n150", 1, {(1, 1): (_LINE1, _LINE1)}),
    _wh("n300", 2, {(1, 2): (_LINE1, Axis("line", 1))}, "2 links between the chips, 1 reserved for dispatch"),
    _wh("t3k", 8, {(1, 8): (_LINE1, Axis("ring", 1)), (2, 4): (Axis("line", 2), Axis("line", 1)),
                   (4, 2): (Axis("line", 1), Axis("line", 2))},
        "four n300 as a 2x4 grid; 2 links per pair, n300-internal hops keep 1 for dispatch"),
    _wh("galaxy", 32, {(4, 8): (Axis("line", 4), Axis("line", 4)), (8, 4): (Axis("line", 4), Axis("line", 4))},
        "4x8 mesh, 4 links per neighbouring pair"),
    _bh("p150", 1, {(1, 1): (_LINE1, _LINE1)}),
    _bh("p300", 2, {(1, 2): (_LINE1, Axis("line", 2))}, "est.: 2 links between the two chips"),
    _bh("quietbox", 4, {(1, 4): (_LINE1, Axis("ring", 4)), (2, 2): (Axis("line", 4), Axis("line", 4))},
        "four p150 as a ring of four, 2 cables (4 links) per neighbouring pair"),
    _bh("p150x8", 8, {(1, 8): (_LINE1, Axis("ring", 2)), (2, 4): (Axis("line", 2), Axis("line", 2))},
        "eight p150 as a 2x4 mesh, 1 cable (2 links) per neighbouring pair"),
]}
ALIASES = {"loudbox": "t3k", "t3000": "t3k", "tg": "galaxy", "p150a": "p150", "p150b": "p150"}
# The system a bare mesh shape means, by arch and chip count.
DEFAULT_SYSTEM = {("wormhole_b0", 1): "n150", ("wormhole_b0", 2): "n300", ("wormhole_b0", 8): "t3k",
                  ("wormhole_b0", 32): "galaxy", ("blackhole", 1): "p150", ("blackhole", 2): "p300",
                  ("blackhole", 4): "quietbox", ("blackhole", 8): "p150x8"}


@dataclass(frozen=True)
class Mesh:
    shape: tuple[int, int]
    system: System
    axes: tuple[Axis, Axis]

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def arch(self) -> str:
        return self.system.arch

    @property
    def name(self) -> str:
        return f"{self.system.name} ({self.shape[0]}x{self.shape[1]})"

    def coords(self, chip: int) -> tuple[int, int]:
        return divmod(chip, self.shape[1])

    def axis_bandwidth(self, axis: int) -> float:
        """Bytes per second one chip sends to its neighbour along `axis` (all usable links)."""
        return self.axes[axis].links * self.system.link_bytes_per_s

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "system": self.system.name, "arch": self.arch,
                "axes": [{"name": AXIS_NAMES[i], "size": self.shape[i], "topology": a.topology, "links": a.links}
                         for i, a in enumerate(self.axes)]}

    def __str__(self):
        return self.name


def _error(message, hint=""):
    return ForgeError("shard", message, hint or f"known systems: {', '.join(sorted(SYSTEMS))}; "
                      "or a mesh shape such as mesh_shape=(1, 8) (docs/mesh.md)")


def parse_shape(text) -> tuple[int, int]:
    """(1, 8), [2, 4], "1x8" or 8 (one row) -> (rows, cols)."""
    if isinstance(text, int):
        return (1, text)
    if isinstance(text, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
        if not m:
            raise _error(f"mesh shape '{text}' is not ROWSxCOLS (e.g. '1x8')")
        return (int(m.group(1)), int(m.group(2)))
    shape = tuple(int(d) for d in text)
    if len(shape) == 1:
        shape = (1,) + shape
    if len(shape) != 2 or min(shape) < 1:
        raise _error(f"mesh shape {list(text)} must be two positive numbers (rows, cols)")
    return shape


def resolve_mesh(mesh=None, mesh_shape=None, arch: str = "wormhole_b0") -> Mesh | None:
    """The Mesh a config names: `mesh` is a system name ("n300", "t3k", ...) or a shape ("1x8");
    `mesh_shape` a (rows, cols) tuple. A system name alone takes its first listed mesh shape."""
    if mesh is None and mesh_shape is None:
        return None
    system = None
    if isinstance(mesh, str) and not re.fullmatch(r"[\d\sxX,]+", mesh):
        key = ALIASES.get(mesh.lower(), mesh.lower())
        if key not in SYSTEMS:
            raise _error(f"unknown system '{mesh}'")
        system = SYSTEMS[key]
    elif mesh is not None:
        if mesh_shape is not None and parse_shape(mesh) != parse_shape(mesh_shape):
            raise _error(f"mesh={mesh!r} and mesh_shape={mesh_shape!r} disagree")
        mesh_shape = mesh
    shape = parse_shape(mesh_shape) if mesh_shape is not None else next(iter(system.meshes))
    if system is None:
        name = DEFAULT_SYSTEM.get((arch, math.prod(shape)))
        if name is None:
            sizes = sorted({s.chips for s in SYSTEMS.values() if s.arch == arch})
            raise _error(f"no {arch} system has {math.prod(shape)} chips (mesh shape {shape[0]}x{shape[1]})",
                         f"{arch} systems have {', '.join(map(str, sizes))} chips: "
                         + ", ".join(f"{s.name} {'/'.join(f'{r}x{c}' for r, c in s.meshes)}"
                                     for s in SYSTEMS.values() if s.arch == arch))
        system = SYSTEMS[name]
    if shape not in system.meshes:
        raise _error(f"system {system.name} has no {shape[0]}x{shape[1]} mesh",
                     f"{system.name} runs as {', '.join(f'{r}x{c}' for r, c in system.meshes)}")
    return Mesh(shape, system, system.meshes[shape])


def meshes_of_arch(arch: str) -> list[Mesh]:
    """Every mesh of every system of `arch`, smallest first (what a fit error suggests)."""
    out = [Mesh(shape, s, axes) for s in SYSTEMS.values() if s.arch == arch for shape, axes in s.meshes.items()]
    return sorted(out, key=lambda m: (m.size, -m.shape[1]))


def axis_index(name, mesh: Mesh, where: str) -> int:
    """'x' -> 0, 'y' -> 1 (ints 0/1 accepted)."""
    if isinstance(name, int) and name in (0, 1):
        return name
    if isinstance(name, str) and name in AXIS_NAMES:
        return AXIS_NAMES.index(name)
    raise _error(f"{where}: mesh axis {name!r} is not 'x', 'y' (or 0, 1)",
                 "axes are named in mesh-shape order: mesh_shape=(2, 4) has 'x' of size 2 and 'y' of size 4")
