"""The embedded back end: one DuckDB file, no server.

Layout: one table per measurement with ``time BIGINT`` (int64 ns), ``series
VARCHAR`` (canonical key of the tag set), one ``"t:<key>"`` VARCHAR column per
tag key ("" = absent) and one typed ``"f:<name>"`` column per field; the
primary key ``(series, time)`` makes every write an idempotent upsert. Field
types are the column types (DOUBLE, BIGINT, BOOLEAN, VARCHAR), so the file is
its own catalogue.

DuckDB lets only one process hold the file read-write, so a connection is
opened per operation and closed again; opening retries for a while when
another process (dashboard, scheduled job, CLI) holds the lock.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from pdm.store.base import ReadQuery, Store
from pdm.store.batch import Batch
from pdm.store.errors import RejectedPoint, StoreUnavailableError
from pdm.store.schema import MACHINE_TAG, SENSOR_TAG, FieldType

SQL_TYPES: dict[str, FieldType] = {
    "DOUBLE": "float", "BIGINT": "integer", "BOOLEAN": "boolean", "VARCHAR": "string"
}
_TYPE_SQL = {v: k for k, v in SQL_TYPES.items()}
TAG, FIELD = "t:", "f:"  # ':' cannot occur in a valid name, so nothing collides with time/series
SEP = "\n"  # batch validation refuses newlines in tag values, so the series key is unambiguous
_VECTOR = 2048  # rows per DuckDB vector (fetch_df_chunk counts in vectors)


def _enc(name: str) -> str:
    """Identifier for ``name``: DuckDB matches identifiers case-insensitively, names do not.

    Upper-case letters become ``^`` + lower case ("Rms" -> "^rms"), which keeps
    "Rms" and "rms" apart and is reversible; '^' cannot occur in a valid name.
    """
    return re.sub(r"[A-Z]", lambda m: "^" + m.group().lower(), name)


def _dec(ident: str) -> str:
    return re.sub(r"\^([a-z])", lambda m: m.group(1).upper(), ident)


def _q(ident: str) -> str:
    """Double-quote an identifier (names are validated already; this is belt and braces)."""
    return '"' + ident.replace('"', '""') + '"'


class EmbeddedStore(Store):
    """A store in a single DuckDB file.

    Parameters
    ----------
    path
        The DuckDB file; it and its parent directories are created on the first write.
    lock_timeout_s
        How long to keep retrying while another process holds the file.
    """

    backend = "embedded"

    def __init__(self, path: str | Path, *, lock_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r})"

    # ------------------------------------------------------------ connection
    @contextmanager
    def _connect(self, *, create: bool = False) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A fresh connection, closed afterwards; None when the file is absent and not ``create``.

        Reads never create the file: a store nobody wrote to is simply empty.
        """
        if not create and not self.path.exists():
            yield None
            return
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open()
        try:
            yield con
        except duckdb.IOException as exc:  # disk full, file damaged under us
            raise StoreUnavailableError(f"embedded store {self.path}: {exc}") from exc
        finally:
            con.close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.02
        while True:
            try:
                # Connections within this process share one database instance,
                # so nested operations (write while iterating a read) work.
                return duckdb.connect(str(self.path))
            except duckdb.Error as exc:
                locked = "lock" in str(exc).lower()
                left = deadline - time.monotonic()
                if locked and left > 0:
                    # Jitter so that waiting processes do not retry in lockstep.
                    time.sleep(min(left, delay * random.uniform(0.5, 1.5)))
                    delay = min(delay * 2, 0.5)
                    continue
                why = f"still locked by another process after {self.lock_timeout_s:g} s" if locked else "cannot open"
                raise StoreUnavailableError(f"embedded store {self.path}: {why}: {exc}") from exc

    @staticmethod
    def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
        """Column -> SQL type of ``table`` ({} when it does not exist)."""
        rows = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = "
            "current_database() AND schema_name = 'main' AND table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
        return dict(rows)

    @staticmethod
    def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
        rows = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' ORDER BY table_name"
        ).fetchall()
        return [r[0] for r in rows]

    @staticmethod
    def _split(cols: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """(name -> tag column, name -> field column) from a table's columns."""
        tags = {_dec(c[2:]): c for c in cols if c.startswith(TAG)}
        fields = {_dec(c[2:]): c for c in cols if c.startswith(FIELD)}
        return dict(sorted(tags.items())), dict(sorted(fields.items()))

    # ----------------------------------------------------------------- write
    def _known_field_types(self, measurement: str) -> dict[str, FieldType]:
        with self._connect() as con:
            if con is None:
                return {}
            cols = self._columns(con, _enc(measurement))
        _, fields = self._split(cols)
        return {f: SQL_TYPES[cols[c]] for f, c in fields.items()}

    def _write_batch(self, batch: Batch) -> list[RejectedPoint]:
        table = _enc(batch.measurement)
        deadline = time.monotonic() + self.lock_timeout_s
        merge = False
        with self._connect(create=True) as con:
            assert con is not None
            while True:
                try:
                    con.begin()
                    rejected = self._upsert(con, table, batch, merge=merge)
                    con.commit()
                    return rejected
                except duckdb.ConstraintException:
                    if merge:
                        raise
                    # A plain insert met a stored key after all (another connection
                    # wrote the same times meanwhile): redo it as a merge.
                    try:
                        con.rollback()
                    except duckdb.Error:
                        pass
                    merge = True
                except duckdb.TransactionException:
                    # Another connection of this process altered or wrote the
                    # table at the same time (DuckDB is optimistic): redo on top.
                    try:
                        con.rollback()
                    except duckdb.Error:
                        pass  # a failed commit has rolled back already
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(random.uniform(0.005, 0.05))

    def _upsert(
        self, con: duckdb.DuckDBPyConnection, table: str, batch: Batch, *, merge: bool = False
    ) -> list[RejectedPoint]:
        """Add missing columns, then insert-or-merge the batch (inside the caller's transaction).

        The merge (``ON CONFLICT``) costs an index probe per row on top of the
        insert's own: it is used only when ``merge`` or when the table already
        holds points in the batch's time range, the only ones its keys can meet.
        """
        frame = batch.frame
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {_q(table)} (time BIGINT NOT NULL, "
            "series VARCHAR NOT NULL, PRIMARY KEY (series, time))"
        )
        cols = self._columns(con, table)
        # Fields that are missing everywhere store nothing and must not fix a type.
        fields = [f for f in batch.field_types if frame[f].notna().any()]
        rejected: list[RejectedPoint] = []
        bad = np.zeros(len(frame), dtype=bool)
        for f in list(fields):
            stored = cols.get(FIELD + _enc(f))
            wanted = _TYPE_SQL[batch.field_types[f]]
            if stored is not None and stored != wanted:
                hit = frame[f].notna().to_numpy()
                for i in np.flatnonzero(hit & ~bad):
                    rejected.append(RejectedPoint(
                        int(batch.rows[i]), _render(batch, int(i)),
                        f"server: field type conflict: {f!r} is stored as "
                        f"{SQL_TYPES[stored]}, got {batch.field_types[f]}",
                    ))
                bad |= hit
                fields.remove(f)
        if bad.any():
            frame = frame.loc[~bad].reset_index(drop=True)
            fields = [f for f in fields if frame[f].notna().any()]
        if frame.empty or not fields:
            return rejected
        tags = sorted(batch.tag_keys)
        for t in tags:
            if TAG + _enc(t) not in cols:
                con.execute(f"ALTER TABLE {_q(table)} ADD COLUMN {_q(TAG + _enc(t))} VARCHAR DEFAULT ''")
        for f in fields:
            if FIELD + _enc(f) not in cols:
                sql_type = _TYPE_SQL[batch.field_types[f]]
                con.execute(f"ALTER TABLE {_q(table)} ADD COLUMN {_q(FIELD + _enc(f))} {sql_type}")
        # Positional names in the scanned table: its own names might differ only
        # in case, which DuckDB would treat as one column. Arrow, not pandas:
        # DuckDB scans it without the GIL and without touching Python strings;
        # from_pandas turns NaN into NULL, as DuckDB's pandas scan does.
        times = frame["time"].to_numpy(np.int64)
        src = pa.table(
            {"time": pa.array(times),
             **{f"t{i}": pa.array(frame[t], from_pandas=True) for i, t in enumerate(tags)},
             **{f"f{i}": pa.array(frame[f], from_pandas=True) for i, f in enumerate(fields)}}
        )
        parts = [f"CASE WHEN t{i} <> '' THEN '{t}=' || t{i} END" for i, t in enumerate(tags)]
        series = f"concat_ws(chr({ord(SEP)}), {', '.join(parts)})" if parts else "''"
        targets = ["time", "series", *(_q(TAG + _enc(t)) for t in tags),
                   *(_q(FIELD + _enc(f)) for f in fields)]
        values = ["time", series, *(f"t{i}" for i in range(len(tags))),
                  *(f"CAST(f{i} AS {_TYPE_SQL[batch.field_types[f]]})" for i, f in enumerate(fields))]
        # InfluxDB merge: a rewrite replaces only the fields it carries.
        insert = f"INSERT INTO {_q(table)} ({', '.join(targets)}) SELECT {', '.join(values)} FROM pdm_batch"
        if merge or self._holds_times(con, table, int(times.min()), int(times.max())):
            updates = ", ".join(f"{c} = COALESCE(excluded.{c}, {c})" for c in targets[2 + len(tags):])
            insert += f" ON CONFLICT (series, time) DO UPDATE SET {updates}"
        con.register("pdm_batch", src)
        try:
            con.execute(insert)
        finally:
            try:
                con.unregister("pdm_batch")
            except duckdb.TransactionException:
                pass  # a failed insert aborted the transaction: let its own error through
        return rejected

    @staticmethod
    def _holds_times(con: duckdb.DuckDBPyConnection, table: str, lo: int, hi: int) -> bool:
        """Whether ``table`` has a point with lo <= time <= hi (min/max statistics skip most of it)."""
        sql = f"SELECT 1 FROM {_q(table)} WHERE time >= $lo AND time <= $hi LIMIT 1"
        return bool(con.execute(sql, {"lo": lo, "hi": hi}).fetchall())

    # ------------------------------------------------------------------ read
    def _iter_read(self, q: ReadQuery) -> Iterator[tuple[pd.DataFrame, list[str]]]:
        with self._connect() as con:
            if con is None:
                return
            table = _enc(q.measurement)
            cols = self._columns(con, table)
            if not cols:
                return
            tags, fields = self._split(cols)
            if q.fields is not None:
                fields = {f: fields[f] for f in q.fields if f in fields}
            if q.every_ns is not None:
                # Only numbers are aggregated (the store contract): strings have no mean,
                # and Flux's mean refuses booleans, so every back end leaves both out.
                fields = {f: c for f, c in fields.items() if cols[c] in ("DOUBLE", "BIGINT")}
            if not fields:
                return
            where, params = self._where(q, tags, fields if q.fields is not None else None)
            tag_cols = [_q(c) for c in tags.values()]
            if q.every_ns is None:
                select = ["time", *tag_cols, *(_q(c) for c in fields.values())]
                # No ORDER BY: sorting materialises the whole result, and streaming
                # must stay memory bounded; chunks come in storage order and
                # Store.read sorts what it collects.
                sql = f"SELECT {', '.join(select)} FROM {_q(table)} WHERE {where}"
            else:
                params["every"] = q.every_ns
                # Floor, not truncation: '%' keeps the dividend's sign for times before 1970.
                bucket = "time - ((time % $every) + $every) % $every"
                select = ["bucket", *(f"any_value({c})" for c in tag_cols),
                          *(_agg(q.agg, _q(c)) for c in fields.values())]
                sql = (f"SELECT {', '.join(select)} FROM (SELECT *, {bucket} AS bucket "
                       f"FROM {_q(table)} WHERE {where}) GROUP BY series, bucket ORDER BY bucket, series")
            names = ["time", *tags, *fields]
            result = con.execute(sql, params)
            for chunk in _rechunk(result, q.chunk_rows):
                chunk.columns = names
                yield chunk, list(tags)

    @staticmethod
    def _where(
        q: ReadQuery, tags: dict[str, str], fields: dict[str, str] | None
    ) -> tuple[str, dict[str, object]]:
        """Filter for time range, machines and (when asked for) rows that hold the fields."""
        clauses = ["time >= $start", "time < $stop"]
        params: dict[str, object] = {"start": q.start, "stop": q.stop}
        if q.machines is not None:
            machine = _q(tags[MACHINE_TAG]) if MACHINE_TAG in tags else "''"
            clauses.append(f"{machine} IN (SELECT unnest($machines))")
            params["machines"] = list(q.machines)
        if fields:
            # Like InfluxDB: selecting fields returns only points that have one of them.
            clauses.append("(" + " OR ".join(f"{_q(c)} IS NOT NULL" for c in fields.values()) + ")")
        return " AND ".join(clauses), params

    # ------------------------------------------------------------- catalogue
    def _tag_values(self, key: str, measurements: Sequence[str] | None) -> Iterable[str]:
        out: set[str] = set()
        with self._connect() as con:
            if con is None:
                return out
            tables = self._tables(con) if measurements is None else [_enc(m) for m in measurements]
            for table in tables:
                col = TAG + _enc(key)
                if col in self._columns(con, table):
                    rows = con.execute(f"SELECT DISTINCT {_q(col)} FROM {_q(table)} WHERE {_q(col)} <> ''")
                    out.update(r[0] for r in rows.fetchall())
        return out

    def _sensors(self, machines: tuple[str, ...] | None) -> Iterable[tuple[str, str, str, str]]:
        out: list[tuple[str, str, str, str]] = []
        with self._connect() as con:
            if con is None:
                return out
            for table in self._tables(con):
                tags, fields = self._split(self._columns(con, table))
                if MACHINE_TAG not in tags or not fields:
                    continue
                machine = _q(tags[MACHINE_TAG])
                sensor = _q(tags[SENSOR_TAG]) if SENSOR_TAG in tags else "''"
                counts = ", ".join(f"count({_q(c)})" for c in fields.values())
                sql = f"SELECT {machine}, {sensor}, {counts} FROM {_q(table)} WHERE {machine} <> ''"
                params: list[object] = []
                if machines is not None:
                    sql += f" AND {machine} IN (SELECT unnest(?))"
                    params.append(list(machines))
                for m, s, *n in con.execute(sql + " GROUP BY ALL", params).fetchall():
                    out.extend((m, _dec(table), s, f) for f, k in zip(fields, n, strict=True) if k)
        return out

    def _measurements(self) -> Iterable[str]:
        with self._connect() as con:
            if con is None:
                return []
            tables = self._tables(con)
            if not tables:
                return []
            probe = " UNION ALL ".join(
                f"SELECT {i} FROM (SELECT 1 FROM {_q(t)} LIMIT 1)" for i, t in enumerate(tables)
            )
            return [_dec(tables[r[0]]) for r in con.execute(probe).fetchall()]

    # ---------------------------------------------------------------- delete
    def _delete(self, q: ReadQuery) -> None:
        with self._connect() as con:
            if con is None:
                return
            table = _enc(q.measurement)
            cols = self._columns(con, table)
            if not cols:
                return
            where, params = self._where(q, self._split(cols)[0], None)
            con.execute(f"DELETE FROM {_q(table)} WHERE {where}", params)

    # ---------------------------------------------------------------- health
    def _ping(self) -> None:
        with self._connect(create=True) as con:
            assert con is not None
            try:
                self._tables(con)  # reads the catalogue, so a damaged file shows here
            except duckdb.Error as exc:
                raise StoreUnavailableError(f"embedded store {self.path}: {exc}") from exc


def _agg(agg: str, col: str) -> str:
    """SQL aggregate of one field column for downsampling."""
    if agg == "mean":
        return f"avg(CAST({col} AS DOUBLE))"
    if agg == "last":
        return f"arg_max({col}, time) FILTER (WHERE {col} IS NOT NULL)"
    return f"{agg}({col})"  # max / min keep the column's type


def _rechunk(result: duckdb.DuckDBPyConnection, rows: int) -> Iterator[pd.DataFrame]:
    """DuckDB's streamed result in frames of exactly ``rows`` rows (the last may be shorter)."""
    vectors = max(1, -(-rows // _VECTOR))
    buf: list[pd.DataFrame] = []
    have = 0
    while True:
        part = result.fetch_df_chunk(vectors)
        if part.empty:
            break
        buf.append(part)
        have += len(part)
        while have >= rows:
            whole = pd.concat(buf, ignore_index=True) if len(buf) > 1 else buf[0]
            yield whole.iloc[:rows]
            rest = whole.iloc[rows:]
            buf, have = ([rest] if len(rest) else []), len(rest)
    if have:
        yield pd.concat(buf, ignore_index=True) if len(buf) > 1 else buf[0]


def _render(batch: Batch, i: int) -> str:
    row = batch.frame.iloc[i]
    tags = ",".join(f"{t}={row[t]}" for t in batch.tag_keys if row[t] != "")
    values = {f: row[f] for f in batch.field_types if pd.notna(row[f])}
    # .item(): numpy scalars would print as np.float64(1.0)
    fields = ",".join(
        f"{f}={(v.item() if isinstance(v, np.generic) else v)!r}" for f, v in values.items()
    )
    return f"{batch.measurement}[{tags}] {fields} @ {int(row['time'])}"
