"""Read training or log data in chunks: CSV, Parquet or JSONL, each into dicts of columns.

A chunk maps feature name -> raw values (a Python list, or a numpy array for numeric Arrow
columns). Prediction outputs are renamed to `prediction` (one output) or `prediction.<name>`.
Files are streamed, so memory stays bounded whatever their size. CSV and JSONL may be compressed
(`.gz`, `.bz2`, `.zst`, decompressed as they stream by Arrow's codecs, so no extra dependency);
Parquet compresses internally and is refused when wrapped in one of those.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from monitor.errors import InputError
from monitor.ingest import native_decode
from monitor.ingest.columns import NumericColumn
from monitor.ingest.records import ModelKey, RecordGroup, parse_messages
from monitor.ingest.schema import PREDICTION

Chunk = dict[str, Any]
CHUNK_ROWS = 65_536
FORMATS = ("csv", "parquet", "jsonl")


COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}


def compression_of(path: Path) -> str | None:
    """The Arrow codec of a compressed file's suffix, or None.

    >>> compression_of(Path("logs.jsonl.zst")), compression_of(Path("train.csv"))
    ('zstd', None)
    """
    return COMPRESSIONS.get(path.suffix.lower())


def data_suffix(path: Path) -> str:
    """The suffix that names the data format, under any compression suffix.

    >>> data_suffix(Path("a.tsv.gz")), data_suffix(Path("b.jsonl")), data_suffix(Path("c.gz"))
    ('.tsv', '.jsonl', '')
    """
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def detect_format(path: Path) -> str:
    name = data_suffix(path)
    fmt = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}.get(name)
    if fmt is None:
        raise InputError(f"unknown data format {path.suffix or '(no extension)'!r} for {path}: "
                         f"use .csv, .parquet or .jsonl (optionally .gz, .bz2 or .zst)")
    if fmt == "parquet" and compression_of(path):
        raise InputError(f"Parquet compresses internally; {path.name} is wrapped in "
                         f"{path.suffix}: decompress it first (.gz, .bz2 and .zst are for CSV "
                         f"and JSONL)")
    return fmt


def open_binary(path: Path) -> BinaryIO:
    """The file's bytes, decompressed as they are read when its suffix says so."""
    codec = compression_of(path)
    if codec is None:
        return path.open("rb")
    import pyarrow as pa

    return io.BufferedReader(pa.input_stream(str(path), compression=codec), 1 << 20)


def decompression_error(path: Path, exc: Exception) -> InputError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputError(f"cannot read {path.name} ({compression_of(path) or 'uncompressed'}): "
                      f"{first}")


def check_readable(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"file not found ({p})")
    if p.is_dir():
        raise InputError(f"expected a file, got a directory ({p})")
    if p.stat().st_size == 0:
        raise InputError(f"file is empty ({p})")
    return p


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ReadStats:
    """What a read skipped: records of other models/versions in a log, and invalid lines."""

    other_models: Counter[ModelKey] = field(default_factory=Counter)
    invalid: int = 0

    def others_text(self, limit: int = 5) -> str:
        """`churn v2: 500, fraud v1: 300` (the most frequent first)."""
        top = self.other_models.most_common(limit)
        more = len(self.other_models) - len(top)
        return ", ".join(f"{m[:60]} v{v[:20]}: {n:,}" for (m, v), n in top) + \
            (f" and {more:,} more" if more > 0 else "")


def read_chunks(path: str | Path, *, predictions: tuple[str, ...] = (),
                chunk_rows: int = CHUNK_ROWS, model: ModelKey | None = None,
                stats: ReadStats | None = None) -> Iterator[Chunk]:
    """Chunks of columns from a CSV, Parquet or JSONL file. For CSV and Parquet, every column is a
    feature except `predictions`, which are the model's outputs. A JSONL prediction log is
    filtered to `model` (model, version) when given, like `replay` does: the records of other
    models and versions are counted in `stats`, never merged."""
    p = check_readable(path)
    fmt = detect_format(p)
    if fmt == "jsonl":
        yield from _jsonl_chunks(p, chunk_rows, model, stats if stats is not None else ReadStats())
        return
    rename = _prediction_names(predictions)
    for table in (_csv_batches(p, chunk_rows) if fmt == "csv" else _parquet_batches(p, chunk_rows)):
        missing = [c for c in predictions if c not in table.column_names]
        if missing:
            raise InputError(f"prediction column not found in {p.name}: {missing[0]!r}")
        yield {rename.get(name, name): _arrow_values(table.column(name))
               for name in table.column_names}


def _prediction_names(columns: tuple[str, ...]) -> dict[str, str]:
    if len(columns) == 1:
        return {columns[0]: PREDICTION}
    return {c: f"{PREDICTION}.{c}" for c in columns}


def _arrow_values(column: Any) -> Any:
    """Numeric Arrow columns become a `NumericColumn` (nulls kept apart from NaN); others lists."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:  # CSV columns arrive as strings: numeric when every non-null value parses
            column = pc.cast(column, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return column.to_pylist()
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        null = column.is_null().to_numpy(zero_copy_only=False)
        return NumericColumn(np.where(null, np.nan, values), null, np.zeros(len(values), bool))
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    return column.to_pylist()


def _csv_batches(path: Path, chunk_rows: int) -> Iterator[Any]:
    """All CSV columns are read as strings (a later block can never contradict a type inferred
    from the first), then converted per chunk by `_arrow_values`."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    delimiter = "\t" if data_suffix(path) == ".tsv" else ","
    codec = compression_of(path)
    try:
        with open_binary(path) as fh:
            header = fh.readline().decode("utf-8").rstrip("\r\n").split(delimiter)
        reader = pacsv.open_csv(
            pa.input_stream(str(path), compression=codec) if codec else path,
            read_options=pacsv.ReadOptions(block_size=max(1 << 20, chunk_rows * 64)),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={c.strip('"'): pa.string() for c in header},
                strings_can_be_null=True),
        )
        for batch in reader:
            yield pa.Table.from_batches([batch])
    except UnicodeDecodeError:
        raise InputError(f"CSV {path.name} is not valid UTF-8") from None
    except pa.ArrowInvalid as exc:
        raise InputError(f"cannot read CSV {path.name}: {str(exc).splitlines()[0]}") from None
    except (OSError, EOFError) as exc:  # a corrupt or truncated compressed file
        raise decompression_error(path, exc) from None


def _parquet_batches(path: Path, chunk_rows: int) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"cannot read Parquet {path.name}: {str(exc).splitlines()[0]}") from None
    for batch in pf.iter_batches(batch_size=chunk_rows):
        yield pa.Table.from_batches([batch])


def jsonl_batches(path: Path, lines_per_batch: int) -> Iterator[Sequence[bytes]]:
    """Batches of raw non-blank lines (bytes) of a JSONL file (compressed or not); with the
    compiled decoder, the lines of a batch stay in one buffer (`native_decode.LineBatch`)."""
    if native_decode.available():
        try:
            with open_binary(path) as fh:
                yield from native_decode.line_batches(fh, lines_per_batch)
        except (OSError, EOFError) as exc:  # a corrupt or truncated compressed file
            raise decompression_error(path, exc) from None
        return
    batch: list[bytes] = []
    try:
        with open_binary(path) as fh:
            for line in fh:
                if line.strip():
                    batch.append(line)
                    if len(batch) >= lines_per_batch:
                        yield batch
                        batch = []
    except (OSError, EOFError) as exc:  # a corrupt or truncated compressed file
        raise decompression_error(path, exc) from None
    if batch:
        yield batch


def _jsonl_chunks(path: Path, chunk_rows: int, model: ModelKey | None,
                  stats: ReadStats) -> Iterator[Chunk]:
    """Prediction-log records from JSONL, as columns. Invalid lines are skipped and counted;
    a file with no valid record (of `model`, when given) is an error."""
    valid = 0
    first_error: str | None = None
    for lines in jsonl_batches(path, chunk_rows):
        batch = parse_messages(lines)
        stats.invalid += len(batch.invalid)
        first_error = first_error or (batch.invalid[0].reason if batch.invalid else None)
        groups = list(batch.groups.values())
        if model is not None:
            for key, group in batch.groups.items():
                if key != model:
                    stats.other_models[key] += len(group)
            groups = [g for key, g in batch.groups.items() if key == model]
        chunk, n = _columns_of(groups)
        valid += n
        if n:
            yield chunk
    if valid == 0 and stats.other_models and model is not None:
        raise InputError(f"no record of model {model[0]!r} version {model[1]!r} in {path.name}; "
                         f"it holds {stats.others_text()}")
    if valid == 0:
        raise InputError(f"no valid prediction-log record in {path.name}"
                         + (f": {first_error}" if first_error else ""))


def _columns_of(groups: list[RecordGroup]) -> tuple[Chunk, int]:
    merged = RecordGroup("", "")
    for group in groups:
        merged.ts.extend(group.ts)
        merged.features.extend(group.features)
        merged.predictions.extend(group.predictions)
    return {name: merged.column(name) for name in sorted(merged.feature_names())}, len(merged)
