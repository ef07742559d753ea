"""Where an attributor's features come from: one checkpoint's per-block train features, chunk by chunk, and
its query features.

Two implementations of one interface:
- InMemoryFeatures: tensors already in memory (what pipeline=lds captures per checkpoint); chunks are views,
  nothing is copied or written to disk.
- StoreFeatures: a grass.store FeatureStore of train features (pipeline=store's cache stage), read shard by
  shard, with the query features captured by the run.

A block is one linear layer for factorized compressors, or the single block "flat" for whole-model ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import NamedTuple

from torch import Tensor

from grass.attribute.gram import row_chunks
from grass.errors import GrassError
from grass.store import FeatureStore

FLAT_BLOCK = "flat"  # the one block of whole-model (flat) features


class TrainChunk(NamedTuple):
    chunk_id: int  # position of the chunk (a store's shard chunk id)
    start: int  # first train row of the chunk
    stop: int  # one past its last row
    features: dict[str, Tensor]  # {block: [stop - start, K_block]}


class FeatureSource(ABC):
    """One checkpoint's features: blocks {name: K}, n_train rows in chunks, and the queries {name: [m, K]}."""

    @property
    @abstractmethod
    def blocks(self) -> dict[str, int]:
        """{block: K_block} in feature order."""

    @property
    @abstractmethod
    def n_train(self) -> int:
        """Train rows."""

    @abstractmethod
    def train_chunks(self) -> Iterator[TrainChunk]:
        """Every train row once, in order, in chunks of whole rows."""

    @abstractmethod
    def queries(self) -> dict[str, Tensor]:
        """{block: [m, K_block]}; GrassError when the source has none."""

    @abstractmethod
    def train(self, block: str) -> Tensor:
        """Every train row of one block [n, K_block], for the in-memory attributors (grass.attribute.attributors)."""

    def train_blocks(self) -> Iterator[dict[str, Tensor]]:
        """The features of each train chunk, without the row range."""
        return (chunk.features for chunk in self.train_chunks())


class InMemoryFeatures(FeatureSource):
    """train {block: [n, K]}, query {block: [m, K]} tensors; chunks are row views of at most
    grass.attribute.gram.CHUNK_ELEMENTS elements of the widest block."""

    def __init__(self, train: Mapping[str, Tensor], query: Mapping[str, Tensor] | None = None) -> None:
        if not train:
            raise GrassError("a feature source needs at least one block of train features")
        if query is not None and set(query) != set(train):
            raise GrassError(f"train and query features cover different blocks: {sorted(set(train) ^ set(query))}")
        rows = {name: int(x.shape[0]) for name, x in train.items()}
        if len(set(rows.values())) > 1:
            raise GrassError(f"train blocks have different numbers of rows: {rows}")
        self._train, self._query = dict(train), None if query is None else dict(query)

    @classmethod
    def flat(cls, train: Tensor, query: Tensor | None = None) -> "InMemoryFeatures":
        """Whole-model features train [n, k], query [m, k] as the one block FLAT_BLOCK."""
        return cls({FLAT_BLOCK: train}, None if query is None else {FLAT_BLOCK: query})

    @property
    def blocks(self) -> dict[str, int]:
        return {name: int(x.shape[1]) for name, x in self._train.items()}

    @property
    def n_train(self) -> int:
        return int(next(iter(self._train.values())).shape[0])

    def train_chunks(self) -> Iterator[TrainChunk]:
        widest = max(self._train.values(), key=lambda x: x.shape[1])
        start = 0
        for chunk_id, block in enumerate(row_chunks(widest)):
            stop = start + int(block.shape[0])
            yield TrainChunk(chunk_id, start, stop, {name: x[start:stop] for name, x in self._train.items()})
            start = stop

    def queries(self) -> dict[str, Tensor]:
        if self._query is None:
            raise GrassError("this feature source holds no query features")
        return self._query

    def train(self, block: str) -> Tensor:
        """The tensor itself (no copy)."""
        if block not in self._train:
            raise GrassError(f"no block '{block}'; the source has {sorted(self._train)}")
        return self._train[block]


class StoreFeatures(FeatureSource):
    """The train features of a FeatureStore (its layers are the blocks), chunk = shard; queries as given."""

    def __init__(self, store: FeatureStore, query: Mapping[str, Tensor] | None = None) -> None:
        if query is not None and set(query) != set(store.layers):
            raise GrassError(f"query features cover blocks {sorted(query)}, the store {sorted(store.layers)}")
        self.store, self._query = store, None if query is None else dict(query)

    @property
    def blocks(self) -> dict[str, int]:
        return dict(self.store.layers)

    @property
    def n_train(self) -> int:
        return self.store.n_rows

    def train_chunks(self, chunk_ids=None) -> Iterator[TrainChunk]:
        """Every shard in order, or only the shards chunk_ids (a worker's share)."""
        slices = {name: self.store.layer_slice(name) for name in self.store.layers}
        for chunk in self.store.iter_chunks(chunk_ids=chunk_ids):
            yield TrainChunk(chunk.chunk_id, chunk.start, chunk.stop,
                             {name: chunk.features[:, cols] for name, cols in slices.items()})

    def queries(self) -> dict[str, Tensor]:
        if self._query is None:
            raise GrassError(f"no query features were given with the store {self.store.path}")
        return self._query

    def train(self, block: str) -> Tensor:
        """The block's columns of every shard, read into memory."""
        if block not in self.store.layers:
            raise GrassError(f"no block '{block}'; the store has {sorted(self.store.layers)}")
        return self.store.read(layer=block)
