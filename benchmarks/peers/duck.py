"""DuckDB in its strongest honest configuration for these queries.

Its own in-memory tables (not Parquet scans), loaded from the shop's Parquet
files with ENUM columns for every low-cardinality string, timestamps as
TIMESTAMP (UTC), events in time order so that zone maps skip by window, a
dense integer contact key (as our store has), and ``PRAGMA threads``.
Loading is timed apart from the queries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.peers.workloads import Times, Workload

EVENT_ENUMS = (
    "type", "context", "product_id", "product_name", "category", "store", "campaign", "url",
    "form_name",
)  # fmt: skip
PROFILE_ENUMS = ("first_name", "last_name", "gender", "city", "country", "preferred_store")


def _q(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class DuckEngine:
    name = "duckdb"

    def __init__(self, threads: int, database: str = ":memory:") -> None:
        self.con = duckdb.connect(database)
        self.con.execute(f"PRAGMA threads={int(threads)}")
        # TIMESTAMPTZ -> TIMESTAMP casts use the session zone; the data is UTC.
        self.con.execute("SET TimeZone = 'UTC'")

    def close(self) -> None:
        self.con.close()

    # ----------------------------------------------------------------- loading
    def _enum(self, prefix: str, col: str, src: str) -> str | None:
        """Create an ENUM type of the column's values; None when it has none."""
        query = f'SELECT DISTINCT "{col}" FROM read_parquet({src}) WHERE "{col}" IS NOT NULL'
        row = self.con.execute(f"SELECT count(*) FROM ({query})").fetchone()
        if not row or not row[0]:
            return None
        name = f"{prefix}_{col}"
        self.con.execute(f"DROP TYPE IF EXISTS {name}")
        self.con.execute(f"CREATE TYPE {name} AS ENUM ({query} ORDER BY 1)")
        return name

    def _select_list(self, schema: pa.Schema, enums: dict[str, str]) -> str:
        cols = []
        for field in schema:
            n = field.name
            if n == "contact_id":
                cols.append("c.cid")
            elif n in enums:
                cols.append(f'x."{n}"::{enums[n]} AS "{n}"')
            elif pa.types.is_timestamp(field.type):
                cols.append(f'x."{n}"::TIMESTAMP AS "{n}"')
            else:
                cols.append(f'x."{n}"')
        return ", ".join(cols)

    def load(self, events: Path, profiles: Path) -> None:
        ev, pr = _q(events), _q(profiles)
        con = self.con
        con.execute(f"""
CREATE OR REPLACE TABLE contacts AS
WITH p AS (SELECT contact_id FROM read_parquet({pr})),
     e AS (SELECT contact_id, min(ts) AS first_ts FROM read_parquet({ev}) GROUP BY contact_id)
SELECT (row_number() OVER (ORDER BY contact_id) - 1)::INTEGER AS cid, contact_id,
       p.contact_id IS NOT NULL AS has_profile, e.first_ts::TIMESTAMP AS first_ts
FROM p FULL OUTER JOIN e USING (contact_id)""")
        enums = {c: t for c in EVENT_ENUMS if (t := self._enum("ev", c, ev))}
        sel = self._select_list(pq.read_schema(events), enums)
        con.execute(f"""
CREATE OR REPLACE TABLE events AS
SELECT {sel} FROM read_parquet({ev}) x JOIN contacts c USING (contact_id) ORDER BY x.ts""")
        enums = {c: t for c in PROFILE_ENUMS if (t := self._enum("pr", c, pr))}
        sel = self._select_list(pq.read_schema(profiles), enums)
        con.execute(f"""
CREATE OR REPLACE TABLE profiles AS
SELECT {sel} FROM read_parquet({pr}) x JOIN contacts c USING (contact_id) ORDER BY c.cid""")

    def data_bytes(self) -> int:
        """The tables' own size (DuckDB's buffer manager, in-memory tables)."""
        row = self.con.execute(
            "SELECT sum(memory_usage_bytes) FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'"
        ).fetchone()
        return int(row[0] or 0) if row else 0

    # ----------------------------------------------------------------- queries
    def run(self, sql: str) -> pa.Table:
        """The audience's contact ids as an Arrow table (the whole answer a
        user gets: the query's keys joined back to their ids)."""
        query = f"SELECT c.contact_id FROM ({sql}) q JOIN contacts c USING (cid)"
        out: pa.Table = self.con.sql(query).to_arrow_table()
        return out

    def prepare(self, w: Workload, t: Times) -> Callable[[], pa.Table]:
        sql = w.sql(t)  # planned by each run, as an ad-hoc query is
        return lambda: self.run(sql)

    def ids(self, table: pa.Table) -> set[str]:
        return {str(x) for x in table.column(0).to_pylist()}
