"""CPPNs with growing topology, NEAT style (kind ``cppn-neat``; Nguyen et al. 2015).

A genome (:class:`NeatGenome`) is a feed-forward graph. Node ids: the preset's inputs are
``0..n_in-1`` (implicit), the three outputs ``n_in..n_in+2``, hidden nodes above. Each
output and hidden node has an activation; each connection a weight and an enabled flag.

Random genomes start with every input connected to every output, then grow
``initial_hidden`` nodes and ``initial_connections`` connections. Mutation applies, each
with its preset probability: add node (splits an enabled connection ``a -> b`` into
``a -> new`` with weight 1 and ``new -> b`` with the old weight, disabling the old one),
add connection (never creating a cycle, counting disabled connections too; re-enables a
disabled one), remove connection, change activation, and Gaussian weight perturbation. A
mutation that changed nothing perturbs one weight. No crossover (this kind keeps no
innovation numbers). All randomness comes from the numpy Generator passed in.

Compilation keeps only nodes that feed an output through enabled connections and orders
them topologically (ties by id), so the kernel and the reference sum in the same order.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evoemotion.errors import GenomeError
from evoemotion.genotypes.base import Genotype, register_kind
from evoemotion.genotypes.presets import PresetConfig, option
from evoemotion.render.ops import ACTIVATION_CODES, ACTIVATIONS
from evoemotion.render.programs import GraphProgram, GraphSpec
from evoemotion.render.reference import eval_graph


@dataclasses.dataclass(frozen=True, kw_only=True)
class NeatConfig(PresetConfig):
    """Preset fields of the ``cppn-neat`` kind."""

    activations: tuple[str, ...] = option(
        help="activations of new hidden nodes", choices=ACTIVATIONS
    )
    output_activation: str = option(
        "tanh", help="initial activation of the outputs", choices=ACTIVATIONS
    )
    weight_max: float = option(3.0, help="weights lie in [-weight_max, weight_max]", minimum=1e-6)
    init_std: float = option(1.0, help="std of new random weights", minimum=0.0)
    initial_hidden: int = option(2, help="hidden nodes grown in a random genome", minimum=0)
    initial_connections: int = option(2, help="extra connections in a random genome", minimum=0)
    max_hidden: int = option(40, help="bloat limit: most hidden nodes", minimum=0, maximum=1000)
    max_connections: int = option(
        160, help="bloat limit: most connections", minimum=1, maximum=10000
    )
    add_node_rate: float = option(
        0.15, help="chance of an add-node mutation", minimum=0.0, maximum=1.0
    )
    add_connection_rate: float = option(
        0.25, help="chance of an add-connection mutation", minimum=0.0, maximum=1.0
    )
    remove_connection_rate: float = option(
        0.05, help="chance of a remove-connection mutation", minimum=0.0, maximum=1.0
    )
    change_activation_rate: float = option(
        0.1, help="chance of a change-activation mutation", minimum=0.0, maximum=1.0
    )
    weight_rate: float = option(0.8, help="chance of perturbing weights", minimum=0.0, maximum=1.0)
    weight_gene_rate: float = option(
        0.3, help="chance per connection when weights are perturbed", minimum=0.0, maximum=1.0
    )
    weight_sigma: float = option(0.5, help="std of weight perturbation", minimum=0.0)

    def check(self) -> None:
        """Check relations between fields (see :meth:`PresetConfig.check`)."""
        super().check()
        if not self.activations:
            raise ValueError("field 'activations': need at least one activation")


@dataclasses.dataclass(frozen=True)
class NodeGene:
    """An output or hidden node."""

    id: int
    activation: str


@dataclasses.dataclass(frozen=True)
class ConnectionGene:
    """A weighted connection ``src -> dst``."""

    src: int
    dst: int
    weight: float
    enabled: bool = True


@dataclasses.dataclass(frozen=True)
class NeatGenome:
    """A CPPN graph: output and hidden nodes sorted by id, connections by (src, dst)."""

    nodes: tuple[NodeGene, ...]
    connections: tuple[ConnectionGene, ...]


class _Draft:
    """A mutable copy of a genome that mutation operators edit."""

    def __init__(self, genome: NeatGenome) -> None:
        self.nodes = {n.id: n.activation for n in genome.nodes}
        self.conns = {(c.src, c.dst): [c.weight, c.enabled] for c in genome.connections}

    def freeze(self) -> NeatGenome:
        return NeatGenome(
            tuple(NodeGene(i, a) for i, a in sorted(self.nodes.items())),
            tuple(
                ConnectionGene(s, d, float(w), bool(e))
                for (s, d), (w, e) in sorted(self.conns.items())
            ),
        )

    def reaches(self, start: int, target: int) -> bool:
        """Whether ``target`` is reachable from ``start`` (all connections)."""
        children: dict[int, list[int]] = {}
        for s, d in self.conns:
            children.setdefault(s, []).append(d)
        seen, todo = {start}, [start]
        while todo:
            node = todo.pop()
            if node == target:
                return True
            for nxt in children.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False


@register_kind
class NeatGenotype(Genotype):
    """Growing-topology CPPN genotype (see the module docstring)."""

    kind = "cppn-neat"
    config_class = NeatConfig
    config: NeatConfig

    def __init__(self, config: NeatConfig, *, name: str) -> None:
        super().__init__(config, name=name)
        self.n_in = len(config.inputs)
        self.outputs = tuple(range(self.n_in, self.n_in + 3))

    # ---------------------------------------------------------------- operators

    def _weight(self, rng: np.random.Generator) -> float:
        b = self.config.weight_max
        return float(np.clip(rng.normal(0.0, self.config.init_std), -b, b))

    def _hidden(self, draft: _Draft) -> list[int]:
        return [i for i in draft.nodes if i not in self.outputs]

    def _add_node(self, draft: _Draft, rng: np.random.Generator) -> bool:
        enabled = [k for k, (_, on) in sorted(draft.conns.items()) if on]
        full = len(draft.conns) + 2 > self.config.max_connections
        if not enabled or full or len(self._hidden(draft)) >= self.config.max_hidden:
            return False
        src, dst = enabled[rng.integers(len(enabled))]
        new = max(draft.nodes) + 1
        draft.nodes[new] = self.config.activations[rng.integers(len(self.config.activations))]
        draft.conns[(src, dst)][1] = False
        draft.conns[(src, new)] = [1.0, True]
        draft.conns[(new, dst)] = [draft.conns[(src, dst)][0], True]
        return True

    def _add_connection(self, draft: _Draft, rng: np.random.Generator, tries: int = 20) -> bool:
        sources = list(range(self.n_in)) + sorted(self._hidden(draft))
        targets = sorted(draft.nodes)
        for _ in range(tries):
            src = sources[rng.integers(len(sources))]
            dst = targets[rng.integers(len(targets))]
            existing = draft.conns.get((src, dst))
            if existing is not None:
                if existing[1]:
                    continue
                existing[:] = [self._weight(rng), True]
                return True
            if src == dst or len(draft.conns) >= self.config.max_connections:
                continue
            if draft.reaches(dst, src):
                continue
            draft.conns[(src, dst)] = [self._weight(rng), True]
            return True
        return False

    def _remove_connection(self, draft: _Draft, rng: np.random.Generator) -> bool:
        if not draft.conns:
            return False
        keys = sorted(draft.conns)
        del draft.conns[keys[rng.integers(len(keys))]]
        return True

    def _change_activation(self, draft: _Draft, rng: np.random.Generator) -> bool:
        node = sorted(draft.nodes)[rng.integers(len(draft.nodes))]
        choices = [a for a in self.config.activations if a != draft.nodes[node]]
        if not choices:
            return False
        draft.nodes[node] = choices[rng.integers(len(choices))]
        return True

    def _perturb_weights(self, draft: _Draft, rng: np.random.Generator) -> bool:
        keys = sorted(draft.conns)
        if not keys:
            return False
        mask = rng.random(len(keys)) < self.config.weight_gene_rate
        mask[rng.integers(len(keys))] = True
        b = self.config.weight_max
        for key, hit in zip(keys, mask, strict=True):
            if hit:
                w = draft.conns[key][0] + rng.normal(0.0, self.config.weight_sigma)
                draft.conns[key][0] = float(np.clip(w, -b, b))
        return True

    def random(self, rng: np.random.Generator, n: int) -> list[NeatGenome]:
        """Inputs fully connected to outputs, then grown hidden nodes and connections."""
        genomes = []
        out_act = self.config.output_activation
        for _ in range(n):
            draft = _Draft(NeatGenome(tuple(NodeGene(o, out_act) for o in self.outputs), ()))
            for o in self.outputs:
                for i in range(self.n_in):
                    draft.conns[(i, o)] = [self._weight(rng), True]
            for _ in range(self.config.initial_hidden):
                self._add_node(draft, rng)
            for _ in range(self.config.initial_connections):
                self._add_connection(draft, rng)
            genomes.append(draft.freeze())
        return genomes

    def mutate(self, genome: NeatGenome, rng: np.random.Generator) -> NeatGenome:
        """Apply each mutation with its preset chance (see the module docstring)."""
        draft = _Draft(self._check(genome))
        c = self.config
        changed = False
        for rate, op in (
            (c.add_node_rate, self._add_node),
            (c.add_connection_rate, self._add_connection),
            (c.remove_connection_rate, self._remove_connection),
            (c.change_activation_rate, self._change_activation),
            (c.weight_rate, self._perturb_weights),
        ):
            if rng.random() < rate:
                changed = op(draft, rng) or changed
        if not changed and not self._perturb_weights(draft, rng):
            self._add_connection(draft, rng)
        return draft.freeze()

    # ----------------------------------------------------------- serialisation

    def _check(self, genome: Any) -> NeatGenome:
        if not isinstance(genome, NeatGenome):
            raise GenomeError(f"expected a NeatGenome, got {type(genome).__name__}")
        return genome

    def to_dict(self, genome: NeatGenome) -> dict[str, Any]:
        """``{"kind", "genotype", "inputs", "nodes": [...], "connections": [...]}``."""
        genome = self._check(genome)
        return {
            **self._header(),
            "inputs": list(self.config.inputs),
            "nodes": [{"id": n.id, "activation": n.activation} for n in genome.nodes],
            "connections": [dataclasses.asdict(c) for c in genome.connections],
        }

    def from_dict(self, data: Mapping[str, Any]) -> NeatGenome:
        """Read nodes and connections back, checking ids, activations and acyclicity."""
        self._check_header(data)
        nodes = _records(data, "nodes", {"id": int, "activation": str})
        conns = _records(
            data, "connections", {"src": int, "dst": int, "weight": float, "enabled": bool}
        )
        draft = _Draft(NeatGenome((), ()))
        for i, rec in enumerate(nodes):
            if rec["activation"] not in ACTIVATION_CODES:
                raise GenomeError(f"field 'nodes[{i}].activation': unknown {rec['activation']!r}")
            if rec["id"] < self.n_in or rec["id"] in draft.nodes:
                raise GenomeError(f"field 'nodes[{i}].id': {rec['id']} is an input id or repeated")
            draft.nodes[rec["id"]] = rec["activation"]
        missing = [o for o in self.outputs if o not in draft.nodes]
        if missing:
            raise GenomeError(f"field 'nodes': output node {missing[0]} is missing")
        for i, rec in enumerate(conns):
            src, dst = rec["src"], rec["dst"]
            if not (src < self.n_in or src in draft.nodes) or src in self.outputs:
                raise GenomeError(f"field 'connections[{i}].src': no input or hidden node {src}")
            if dst not in draft.nodes:
                raise GenomeError(f"field 'connections[{i}].dst': no output or hidden node {dst}")
            if (src, dst) in draft.conns or draft.reaches(dst, src):
                raise GenomeError(f"field 'connections[{i}]': repeated or closes a cycle")
            draft.conns[(src, dst)] = [rec["weight"], rec["enabled"]]
        return draft.freeze()

    def to_text(self, genome: NeatGenome) -> str:
        """Hidden node and connection counts, hidden activations and output activations."""
        genome = self._check(genome)
        hidden = Counter(n.activation for n in genome.nodes if n.id not in self.outputs)
        on = sum(c.enabled for c in genome.connections)
        outs = ",".join(n.activation for n in genome.nodes if n.id in self.outputs)
        acts = " ".join(f"{a}x{k}" for a, k in sorted(hidden.items()))
        return (
            f"cppn-neat: {sum(hidden.values())} hidden ({acts or 'none'}), "
            f"{on}/{len(genome.connections)} connections enabled, outputs {outs}"
        )

    # ------------------------------------------------------------- evaluation

    def plan(self, genome: NeatGenome) -> list[tuple[int, int, list[tuple[int, float]]]]:
        """Evaluation order: ``(node id, activation code, [(source id, weight)])`` per node.

        Only nodes that feed an output through enabled connections are kept; the order is
        topological with ties broken by id, and each node's sources are sorted by id.
        """
        genome = self._check(genome)
        incoming: dict[int, list[tuple[int, float]]] = {n.id: [] for n in genome.nodes}
        for c in genome.connections:
            if c.enabled:
                incoming[c.dst].append((c.src, c.weight))
        needed, todo = set(self.outputs), list(self.outputs)
        while todo:
            for src, _ in incoming[todo.pop()]:
                if src >= self.n_in and src not in needed:
                    needed.add(src)
                    todo.append(src)
        pending = {i: {s for s, _ in incoming[i] if s >= self.n_in} for i in needed}
        acts = {n.id: n.activation for n in genome.nodes}
        order = []
        while pending:
            ready = min(i for i, deps in pending.items() if not deps)
            del pending[ready]
            for deps in pending.values():
                deps.discard(ready)
            order.append((ready, ACTIVATION_CODES[acts[ready]], sorted(incoming[ready])))
        return order

    def compile(self, genomes: Sequence[NeatGenome]) -> GraphProgram:
        """Node programs from :meth:`plan`: slots are inputs, then nodes in plan order."""
        specs = []
        for genome in genomes:
            order = self.plan(genome)
            slot = {i: i for i in range(self.n_in)}
            slot.update({node: self.n_in + k for k, (node, _, _) in enumerate(order)})
            specs.append(
                GraphSpec(
                    activations=[code for _, code, _ in order],
                    incoming=[[(slot[s], w) for s, w in inc] for _, _, inc in order],
                    outputs=[slot[o] for o in self.outputs],
                )
            )
        return GraphProgram.pack(self.config.inputs, specs)

    def reference_channels(self, genome: NeatGenome, coords: dict[str, np.ndarray]) -> np.ndarray:
        """Evaluate node by node with :func:`~evoemotion.render.reference.eval_graph`."""
        return eval_graph(self.config.inputs, self.plan(genome), self.outputs, coords)


def _records(data: Mapping[str, Any], field: str, schema: dict[str, type]) -> list[dict[str, Any]]:
    """Check that ``data[field]`` is a list of objects with the typed keys of ``schema``."""
    items = data.get(field)
    if not isinstance(items, list):
        raise GenomeError(f"field '{field}': expected a list")
    records = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise GenomeError(f"field '{field}[{i}]': expected an object")
        record = {}
        for key, tp in schema.items():
            value = item.get(key)
            ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
            if tp is float and isinstance(value, int) and not isinstance(value, bool):
                value, ok = float(value), True
            if not ok or (tp is float and not np.isfinite(value)):
                raise GenomeError(
                    f"field '{field}[{i}].{key}': expected {tp.__name__}, got {value!r}"
                )
            record[key] = value
        records.append(record)
    return records
