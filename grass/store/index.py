"""Scan a store folder: finished shards (data + manifest), row coverage, and files that belong to nothing.

A shard is finished when its manifest exists (the manifest is written last). A data file without a
manifest is unfinished (a killed write) and is rewritten on resume; hidden `.*.tmp` files are the remains
of a write killed before its rename.
"""

from dataclasses import dataclass, field
from pathlib import Path

from grass.errors import GrassError
from grass.store.manifest import (
    MANIFEST_GLOB,
    SHARD_GLOB,
    STORE_FILE,
    Layout,
    check_shard_manifest,
    read_json,
    shard_name,
)


@dataclass(frozen=True)
class Shard:
    """One finished shard: rows [start, stop) live in `data` (manifest dict in `manifest`)."""

    worker: int
    chunk: int
    start: int
    stop: int
    data: Path
    manifest: dict


@dataclass
class StoreReport:
    """What verify() found. Ranges are half-open [start, stop)."""

    n_rows: int
    shards: list = field(default_factory=list)  # finished Shard objects, sorted by start
    missing: list = field(default_factory=list)  # [(start, stop)] rows no finished shard holds
    duplicated: list = field(default_factory=list)  # [(start, stop, [shard files])] rows held more than once
    orphans: list = field(default_factory=list)  # [Path] unfinished data, manifests without data, temp files
    corrupt: list = field(default_factory=list)  # [str] checksum / size failures (verify(checksums=True))

    @property
    def ok(self) -> bool:
        """All rows exactly once and nothing corrupt (orphans are harmless leftovers, reported apart)."""
        return not (self.missing or self.duplicated or self.corrupt)

    def describe(self) -> str:
        held = sum(s.stop - s.start for s in self.shards)
        parts = [f"{len(self.shards)} shards, {held}/{self.n_rows} rows"]
        if self.missing:
            parts.append(f"missing rows {_ranges(self.missing)}")
        if self.duplicated:
            parts.append("duplicated rows " + "; ".join(f"[{a}, {b}) in {', '.join(f)}" for a, b, f in self.duplicated))
        if self.orphans:
            parts.append(f"orphan files {[p.name for p in self.orphans]}")
        if self.corrupt:
            parts.append(f"corrupt: {self.corrupt}")
        return "; ".join(parts)


def _ranges(ranges: list) -> str:
    shown = ", ".join(f"[{a}, {b})" for a, b in ranges[:8])
    return shown + (f" and {len(ranges) - 8} more" if len(ranges) > 8 else "")


def scan(folder: Path, layout: Layout, grid: dict) -> StoreReport:
    """Finished shards, coverage and orphans of `folder`. grid: chunk_id -> (start, stop) of the store.

    A manifest that names other rows than the grid, or another layout, is an error naming the manifest.
    """
    report = StoreReport(layout.n_rows)
    for manifest_path in sorted(folder.glob(MANIFEST_GLOB)):
        manifest = read_json(manifest_path)
        check_shard_manifest(manifest, layout, manifest_path)
        worker, chunk = manifest["worker"], manifest["chunk"]
        start, stop = manifest["rows"]
        if manifest_path.stem != shard_name(worker, chunk) or grid.get(chunk) != (start, stop):
            raise GrassError(f"shard manifest {manifest_path} names worker {worker}, chunk {chunk}, rows "
                             f"[{start}, {stop}), which is not chunk {chunk} of this store "
                             f"({grid.get(chunk)}); delete it and rerun")
        data = manifest_path.with_suffix(".npy")
        if data.exists():
            report.shards.append(Shard(worker, chunk, start, stop, data, manifest))
        else:
            report.orphans.append(manifest_path)
    finished = {s.data for s in report.shards}
    report.orphans += [p for p in sorted(folder.glob(SHARD_GLOB)) if p not in finished]
    report.orphans += sorted(p for p in folder.glob(".*.tmp"))
    report.orphans += sorted(p for p in folder.iterdir()
                             if p.is_file() and p.name != STORE_FILE and not p.name.startswith(".")
                             and not p.match(SHARD_GLOB) and not p.match(MANIFEST_GLOB))
    report.shards.sort(key=lambda s: (s.start, s.worker))
    report.missing, report.duplicated = coverage(report.shards, layout.n_rows)
    return report


def coverage(shards: list, n_rows: int) -> tuple[list, list]:
    """(missing, duplicated) row ranges of shards sorted by start, over rows [0, n_rows)."""
    events = sorted({0, n_rows, *(s.start for s in shards), *(s.stop for s in shards)})
    missing, duplicated = [], []
    for a, b in zip(events, events[1:]):
        holders = [s.data.name for s in shards if s.start <= a and b <= s.stop]
        if not holders and a < n_rows:
            _extend(missing, a, b)
        elif len(holders) > 1:
            duplicated.append((a, b, holders))
    return missing, duplicated


def _extend(ranges: list, a: int, b: int) -> None:
    if ranges and ranges[-1][1] == a:
        ranges[-1] = (ranges[-1][0], b)
    else:
        ranges.append((a, b))
