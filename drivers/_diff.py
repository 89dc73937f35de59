"""The data diff: what a write did to a table, computed inside the database.

One shape for Postgres and MySQL/MariaDB. Given a cursor, the base table (what was there), the new rows (a
table, or a staging table inside the write's transaction) and a key, one aggregate query counts rows in
each, keys added, removed, changed and unchanged, the rows changed per column, null counts and numeric
sum/min/max on each side; a second query (run only when something differs) pulls the sample: at most
`SAMPLE` changed, added and removed rows each, ordered by key, every value cut to `VALUE_CHARS`
characters. Nothing else leaves the server.

- With a key, rows are paired on it: Postgres by a FULL JOIN, MySQL (which has none) by UNION ALL of both
  sides and GROUP BY the key. Values are compared NULL-safely (`IS DISTINCT FROM`, `<=>`), so NULL to a
  value is a change and NULL to NULL is not.
- Without a key (none given, no primary key, or one that repeats), whole rows are compared as multisets:
  UNION ALL + GROUP BY every column, counting copies on each side; `changed` is then 0 by definition and
  `key` is empty.
- A missing base table is an empty one: every row is added.
- `mode` says what the write does with the new rows, so that a diff taken before the write is the diff of
  the table after it: `replace` (the table becomes the new rows), `upsert` (keys absent from the new rows
  stay as they are), `insert_new` (an upsert that ignores duplicates: only new keys change the table) and
  `append` (the new rows come on top; compared as multisets).

Only columns present on both sides are compared; columns added, dropped or retyped are listed in
`schema_changes`. A retyped column is compared as text unless both types are numeric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SAMPLE = 10
AGGREGATES_PER_QUERY = 1000
VALUE_CHARS = 200
KINDS = ("changed", "added", "removed")


@dataclass
class Col:
    name: str
    type: str
    numeric: bool = False
    exact: bool = True  # False: no equality operator (json, xml, geometry); compared as text
    textual: bool = False  # MySQL: compared byte for byte, so a case-only change counts
    binary: bool = False  # MySQL: shown as hex


@dataclass
class Relation:
    """What one side of a diff reads: a table (`sql` is its qualified name) or a subquery with the columns
    it produces. `label` is what the report calls it; `exists` is False for a base table not there yet."""

    sql: str
    label: str
    columns: list[Col] = field(default_factory=list)
    exists: bool = True
    primary_key: list[str] = field(default_factory=list)
    unique_keys: list[set[str]] = field(default_factory=list)


@dataclass
class Paired:
    """Rows of both sides paired on the key, as a FROM clause and the expressions that read it."""

    source: str
    in_base: str  # condition: the key is in the base table
    in_new: str  # condition: the key is in the new rows
    before: list[str]  # per compared column, its base value
    after: list[str]  # per compared column, its new value


# --- dialects -----------------------------------------------------------------------------------------------

MYSQL_NUMERIC = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric"}
MYSQL_NUMERIC |= {"float", "double", "real"}
MYSQL_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"}
MYSQL_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
MYSQL_NO_EQUALITY = {"geometry", "point", "linestring", "polygon"}

# `exact`: the type (an array's element type) has a default btree or hash operator class of its own, so
# IS DISTINCT FROM works on it; any other column is compared as text (json, xml, point, json[], enums).
_PG_COLUMNS = """
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), coalesce(bt.typcategory, t.typcategory)::text,
       EXISTS (SELECT FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
                WHERE oc.opcdefault AND am.amname IN ('btree', 'hash')
                  AND oc.opcintype = CASE WHEN b.typelem <> 0 AND b.typcategory = 'A' THEN b.typelem
                                          ELSE b.oid END)
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
JOIN pg_type b ON b.oid = coalesce(bt.oid, t.oid)
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_PG_KEYS = """
SELECT i.indisprimary, array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY i.indexrelid, i.indisprimary
"""


class Postgres:
    name = "postgres"

    @staticmethod
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    @staticmethod
    def distinct(a: str, b: str) -> str:
        return f"({a} IS DISTINCT FROM {b})"

    @staticmethod
    def text(expr: str, col: Col) -> str:
        return f"left(({expr})::text, {VALUE_CHARS})"

    @staticmethod
    def as_text(expr: str) -> str:
        return f"({expr})::text"

    @staticmethod
    def comparable(expr: str, col: Col, as_text: bool) -> str:
        return f"({expr})::text" if as_text or not col.exact else expr

    @classmethod
    def describe(cls, cur, sql: str, label: str) -> Relation:
        cur.execute("SELECT to_regclass($1) IS NOT NULL", (sql,))
        if not cur.fetchone()[0]:
            return Relation(sql, label, exists=False)
        cur.execute(_PG_COLUMNS, (sql,))
        columns = [
            Col(name, kind, numeric=category == "N", exact=bool(exact))
            for name, kind, category, exact in cur.fetchall()
        ]
        cur.execute(_PG_KEYS, (sql,))
        primary, unique = [], []
        for is_primary, names in cur.fetchall():
            names = list(names)
            unique.append(set(names))
            primary = names if is_primary else primary
        return Relation(sql, label, columns, True, primary, unique)

    @staticmethod
    def count_if(condition: str) -> str:
        return f"count(*) FILTER (WHERE {condition})"

    @classmethod
    def paired(cls, base: str, new: str, key: list[str], cols: list[str]) -> Paired:
        """A FULL JOIN on the key, aggregated as it is (a derived table in between costs a third more).
        A side is present when its first key column is not NULL: keys are primary keys, or upsert keys,
        which Postgres refuses to be NULL."""
        q = cls.quote
        on = " AND ".join(f"b.{q(k)} = n.{q(k)}" for k in key)
        return Paired(
            f"{base} b FULL JOIN {new} n ON {on}",
            f"b.{q(key[0])} IS NOT NULL",
            f"n.{q(key[0])} IS NOT NULL",
            [f"b.{q(c)}" for c in cols],
            [f"n.{q(c)}" for c in cols],
        )

    @classmethod
    def empty(cls, new: Relation) -> str:
        return f"(SELECT * FROM {new.sql} x WHERE false)"


class MySQL:
    name = "mysql"

    @staticmethod
    def quote(name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    @staticmethod
    def distinct(a: str, b: str) -> str:
        return f"(NOT ({a} <=> {b}))"

    @staticmethod
    def text(expr: str, col: Col) -> str:
        return (
            f"LEFT(HEX({expr}), {VALUE_CHARS})"
            if col.binary
            else f"LEFT(CAST({expr} AS CHAR), {VALUE_CHARS})"
        )

    @staticmethod
    def as_text(expr: str) -> str:
        return f"CAST({expr} AS CHAR)"

    @staticmethod
    def comparable(expr: str, col: Col, as_text: bool) -> str:
        if not col.exact:
            return f"ST_AsBinary({expr})"
        return f"BINARY({expr})" if as_text or col.textual else expr

    @classmethod
    def describe(cls, cur, sql: str, label: str) -> Relation:
        import pymysql

        try:
            cur.execute(f"SHOW COLUMNS FROM {sql}")
        except pymysql.err.ProgrammingError as exc:
            if exc.args and exc.args[0] in (1146, 1049):  # no such table, no such database
                return Relation(sql, label, exists=False)
            raise
        columns = []
        for row in cur.fetchall():
            name, kind = row[0], str(row[1])
            base = kind.split("(")[0].split()[0].lower()
            columns.append(
                Col(
                    name,
                    kind,
                    numeric=base in MYSQL_NUMERIC,
                    exact=base not in MYSQL_NO_EQUALITY,
                    textual=base in MYSQL_TEXT,
                    binary=base in MYSQL_BINARY,
                )
            )
        cur.execute(f"SHOW INDEX FROM {sql}")
        names = [d[0].lower() for d in cur.description]
        indexes: dict[str, list[tuple[int, str]]] = {}
        for row in cur.fetchall():
            r = dict(zip(names, row, strict=True))
            if int(r["non_unique"]) == 0 and r.get("column_name"):
                indexes.setdefault(r["key_name"], []).append((int(r["seq_in_index"]), r["column_name"]))
        primary = [c for _, c in sorted(indexes.get("PRIMARY", []))]
        unique = [{c for _, c in parts} for parts in indexes.values()]
        return Relation(sql, label, columns, True, primary, unique)

    @staticmethod
    def count_if(condition: str) -> str:
        return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"

    @classmethod
    def paired(cls, base: str, new: str, key: list[str], cols: list[str]) -> Paired:
        """MySQL has no FULL JOIN: UNION ALL of both sides, one group per key."""
        q = cls.quote
        keys = ", ".join(f"{q(k)} AS k{i}" for i, k in enumerate(key))
        side_b = "".join(f", {q(c)} AS b{i}, NULL AS n{i}" for i, c in enumerate(cols))
        side_n = "".join(f", NULL, {q(c)}" for c in cols)
        union = (
            f"SELECT {keys}, 1 AS hb, 0 AS hn{side_b} FROM {base} b "
            f"UNION ALL SELECT {', '.join(q(k) for k in key)}, 0, 1{side_n} FROM {new} n"
        )
        group = ", ".join(f"k{i}" for i in range(len(key)))
        values = "".join(f", MAX(b{i}) AS b{i}, MAX(n{i}) AS n{i}" for i in range(len(cols)))
        return Paired(
            f"(SELECT {group}, MAX(hb) AS hb, MAX(hn) AS hn{values} FROM ({union}) u GROUP BY {group}) j",
            "j.hb = 1",
            "j.hn = 1",
            [f"j.b{i}" for i in range(len(cols))],
            [f"j.n{i}" for i in range(len(cols))],
        )

    @classmethod
    def empty(cls, new: Relation) -> str:
        return f"(SELECT * FROM {new.sql} x WHERE 1 = 0)"


DIALECTS = {"postgres": Postgres, "mysql": MySQL}


# --- the diff -----------------------------------------------------------------------------------------------


def describe(cur, dialect: str, sql: str, label: str) -> Relation:
    """A table's columns and unique keys from the catalog (a missing table gives `exists=False`)."""
    return DIALECTS[dialect].describe(cur, sql, label)


def compare(
    cur,
    dialect: str,
    base: Relation,
    new: Relation,
    key: list[str] | None = None,
    mode: str = "replace",
    schema_changes: bool = True,
) -> dict:
    """The diff of `new` against `base` (see the module docstring); a JSON-ready dict.

    `key`: the writer's primary key, if it has one; else the base table's primary key is used, else whole
    rows. `schema_changes` False: the new side is the incoming rows of a write, whose columns are a subset
    of the table's by construction, so missing columns are not reported as dropped."""
    d = DIALECTS[dialect]
    by_base = {c.name: c for c in base.columns}
    common = [c for c in new.columns if c.name in by_base] if base.exists else list(new.columns)
    changes = _schema_changes(base, new) if schema_changes and base.exists else []
    chosen, note = _key(cur, d, base, new, key, {c.name for c in common})
    if mode == "append":
        chosen, note = [], "append adds the incoming rows to the table: compared as whole rows"
    base_sql = base.sql if base.exists else d.empty(new)
    if not base.exists:
        note = (note + "; " if note else "") + "the base table does not exist: every row is added"
    pairs = [(by_base.get(c.name, c), c) for c in common]
    if chosen:
        values = [c for c in common if c.name not in chosen]
        result = _keyed(
            cur, d, base_sql, new.sql, chosen, [(by_base.get(c.name, c), c) for c in values], mode
        )
    else:
        result = _multiset(cur, d, base_sql, new.sql, pairs, mode)
    return {
        "table": new.label,
        "base_table": base.label,
        "key_columns": chosen,  # not "key": a mapping key the redactor treats as secret-named
        **result,
        "schema_changes": changes,
        "note": note,
    }


def _key(cur, d, base: Relation, new: Relation, key, names: set[str]) -> tuple[list[str], str]:
    """The key to pair rows on, and why when there is none: the writer's, else the base table's (or, with
    no base table, the new one's) primary key, provided every side has it and no side repeats it."""
    source = "the writer's primary_key"
    if not key:
        key, source = (base.primary_key if base.exists else new.primary_key), "the primary key"
    if not key:
        return [], "no primary key: compared as whole rows (multiset)"
    missing = [k for k in key if k not in names]
    if missing:
        return [], f"key column {', '.join(missing)} is not on both sides: compared as whole rows"
    for side in (base, new):  # a primary key is unique and never NULL; anything else is checked
        if side.exists and set(key) != set(side.primary_key) and _repeats(cur, d, side.sql, key):
            why = f"{source} ({', '.join(key)}) repeats or is NULL in {side.label}: compared as whole rows"
            return [], why
    return list(key), ""


def _repeats(cur, d, table: str, key: list[str]) -> bool:
    keys = ", ".join(d.quote(k) for k in key)
    nulls = "".join(f" OR {d.quote(k)} IS NULL" for k in key)
    having = f"COUNT(*) > 1{nulls}"
    cur.execute(f"SELECT COUNT(*) FROM (SELECT 1 AS x FROM {table} t GROUP BY {keys} HAVING {having}) r")
    return int(cur.fetchone()[0]) > 0


def _schema_changes(base: Relation, new: Relation) -> list[dict]:
    before = {c.name: c for c in base.columns}
    after = {c.name: c for c in new.columns}
    changes = [{"column": n, "change": "added", "type": after[n].type} for n in after if n not in before]
    changes += [{"column": n, "change": "removed", "type": before[n].type} for n in before if n not in after]
    changes += [
        {"column": n, "change": "retyped", "from": before[n].type, "to": after[n].type}
        for n in after
        if n in before and before[n].type != after[n].type
    ]
    return changes


def _when(condition: str, then: str = "1") -> str:
    return f"SUM(CASE WHEN {condition} THEN {then} ELSE 0 END)"


def _keyed(cur, d, base: str, new: str, key: list[str], pairs: list[tuple[Col, Col]], mode: str) -> dict:
    """Rows paired on the key: one aggregate over the pairing, then the sample if anything differs."""
    names = [after.name for _, after in pairs]
    p = d.paired(base, new, key, names)
    in_base, in_new, before, after = p.in_base, p.in_new, p.before, p.after
    if mode in ("upsert", "insert_new"):  # a key absent from the incoming rows keeps its row as it was;
        # insert_new (an upsert that ignores duplicates) also keeps the row of every key the table has
        takes = in_new if mode == "upsert" else f"NOT ({in_base})"
        after = [f"CASE WHEN {takes} THEN {n} ELSE {b} END" for b, n in zip(before, after, strict=True)]
        in_new = "1 = 1"
    differs = [_differs(d, b, n, pair) for b, n, pair in zip(before, after, pairs, strict=True)]
    changed_row = " OR ".join(differs) or "1 = 0"
    both = f"{in_base} AND {in_new}"
    aggregates = [
        d.count_if(in_base),
        d.count_if(in_new),
        d.count_if(f"NOT ({in_base})"),
        d.count_if(f"NOT ({in_new})"),
        d.count_if(f"{both} AND ({changed_row})"),
        *[d.count_if(f"{both} AND {x}") for x in differs],
    ]
    stats = _stats_sql(d, pairs, lambda i: before[i], lambda i: after[i])
    row = _aggregate(cur, aggregates + stats, p.source)
    rows_base, rows_new, added, removed, changed = (_int(v) for v in row[:5])
    per_column = [_int(v) for v in row[5 : 5 + len(pairs)]]
    sample = []
    for kind, count in (("changed", changed), ("added", added), ("removed", removed)):
        if count:
            sample += _keyed_sample(cur, d, kind, base, new, key, pairs)
    return {
        "rows_base": rows_base,
        "rows_new": rows_new,
        "added": added,
        "removed": removed,
        "changed": changed,
        "unchanged": rows_base - removed - changed,
        "columns": dict(zip(names, per_column, strict=True)),
        "stats": _stats(pairs, row[5 + len(pairs) :], (rows_base, rows_new)),
        "sample": sample,
    }


def _differs(d, before: str, after: str, pair: tuple[Col, Col]) -> str:
    """NULL-safe: true when the two values differ; a retyped column is compared as text."""
    b, n = pair
    as_text = b.type != n.type and not (b.numeric and n.numeric)
    return d.distinct(d.comparable(before, b, as_text), d.comparable(after, n, as_text))


def _keyed_sample(cur, d, kind: str, base: str, new: str, key: list[str], pairs) -> list[dict]:
    """The first SAMPLE rows of one kind in key order: a join (or anti-join) with a LIMIT, which an index
    on the key answers without reading the whole table."""
    q = d.quote
    on = " AND ".join(f"b.{q(k)} = n.{q(k)}" for k in key)
    side = "b" if kind == "removed" else "n"
    shown = [d.text(f"{side}.{q(k)}", Col(k, "")) for k in key]
    if kind == "changed":
        flags = [_differs(d, f"b.{q(a.name)}", f"n.{q(a.name)}", (b, a)) for b, a in pairs]
        shown += [d.text(f"b.{q(a.name)}", b) for b, a in pairs]
        shown += [d.text(f"n.{q(a.name)}", a) for b, a in pairs]
        shown += [f"CASE WHEN {flag} THEN 1 ELSE 0 END" for flag in flags]
        source = f"{base} b JOIN {new} n ON {on} WHERE {' OR '.join(flags) or '1 = 0'}"
    else:
        shown += [d.text(f"{side}.{q(a.name)}", b if side == "b" else a) for b, a in pairs]
        inner, outer = ("n", "b") if kind == "removed" else ("b", "n")
        source = (
            f"{base if outer == 'b' else new} {outer} WHERE NOT EXISTS (SELECT 1 FROM "
            f"{base if inner == 'b' else new} {inner} WHERE {on})"
        )
    order = ", ".join(f"{side}.{q(k)}" for k in key)
    cur.execute(f"SELECT {', '.join(shown)} FROM {source} ORDER BY {order} LIMIT {SAMPLE}")
    names = [a.name for _, a in pairs]
    sample = []
    for row in cur.fetchall():
        keys = dict(zip(key, row[: len(key)], strict=True))
        values = list(row[len(key) :])
        if kind == "changed":
            width = len(names)
            before = {**keys, **dict(zip(names, values[:width], strict=True))}
            after = {**keys, **dict(zip(names, values[width : 2 * width], strict=True))}
            marks = [n for n, m in zip(names, values[2 * width :], strict=True) if _int(m)]
        else:
            row_values = {**keys, **dict(zip(names, values, strict=True))}
            before, after = (row_values, None) if kind == "removed" else (None, row_values)
            marks = []
        sample.append({"kind": kind, "row_key": keys, "before": before, "after": after, "changed": marks})
    return sample


def _multiset(cur, d, base: str, new: str, pairs: list[tuple[Col, Col]], mode: str) -> dict:
    """Whole rows as multisets: copies of each distinct row on each side."""
    grouped = []
    for before, after in pairs:
        as_text = before.type != after.type and not (before.numeric and after.numeric)
        grouped.append((d.comparable(d.quote(after.name), after, as_text), as_text or not after.exact))
    cols = ", ".join(f"{expr} AS g{i}" for i, (expr, _) in enumerate(grouped)) or "1 AS g0"
    width = max(len(pairs), 1)
    group = ", ".join(f"g{i}" for i in range(width))
    union = f"SELECT {cols}, 1 AS cb, 0 AS cn FROM {base} b UNION ALL SELECT {cols}, 0, 1 FROM {new} n"
    counted = f"SELECT {group}, SUM(cb) AS cb, SUM(cn) AS cn FROM ({union}) u GROUP BY {group}"
    if mode == "append":  # the table keeps its rows and gains the new ones
        counted = f"SELECT {group}, cb, cb + cn AS cn FROM ({counted}) a"
    aggregates = [
        "SUM(cb)",
        "SUM(cn)",
        _when("cn > cb", "cn - cb"),
        _when("cb > cn", "cb - cn"),
        _when("cb > 0 AND cn > 0", "CASE WHEN cb < cn THEN cb ELSE cn END"),
    ]
    # a column grouped as text has no sum: only its null counts are kept
    numeric = [
        (b, a) if not text else (Col(b.name, b.type), Col(a.name, a.type))
        for (b, a), (_, text) in zip(pairs, grouped, strict=True)
    ]
    stats = _stats_sql(d, numeric, lambda i: f"g{i}", lambda i: f"g{i}", ("cb", "cn"))
    row = _aggregate(cur, aggregates + stats, f"({counted}) c")
    rows_base, rows_new, added, removed, unchanged = (_int(v) for v in row[:5])
    result = {
        "rows_base": rows_base,
        "rows_new": rows_new,
        "added": added,
        "removed": removed,
        "changed": 0,
        "unchanged": unchanged,
        "columns": {},
        "stats": _stats(numeric, row[5:], (rows_base, rows_new)),
        "sample": [],
    }
    if (added or removed) and pairs:
        kind = "CASE WHEN cn > cb THEN 'added' ELSE 'removed' END"
        cur.execute(
            f"SELECT kind, copies, {', '.join(f'c{i}' for i in range(len(pairs)))} FROM ("
            f"SELECT {kind} AS kind, ROW_NUMBER() OVER (PARTITION BY {kind} ORDER BY {group}) AS rn, "
            f"CASE WHEN cn > cb THEN cn - cb ELSE cb - cn END AS copies, {group}, "
            + ", ".join(f"{d.text(f'g{i}', after)} AS c{i}" for i, (_, after) in enumerate(pairs))
            + f" FROM ({counted}) c WHERE cb <> cn) s WHERE rn <= {SAMPLE} ORDER BY kind, {group}"
        )
        names = [after.name for _, after in pairs]
        for row in cur.fetchall():
            values = dict(zip(names, row[2:], strict=True))
            added_row = row[0] == "added"
            result["sample"].append(
                {
                    "kind": row[0],
                    "row_key": {},
                    "copies": _int(row[1]),
                    "before": None if added_row else values,
                    "after": values if added_row else None,
                    "changed": [],
                }
            )
        result["sample"].sort(key=lambda s: KINDS.index(s["kind"]))
    return result


def _aggregate(cur, expressions: list[str], source: str) -> list:
    """One row of aggregates over `source`: one query, or one per AGGREGATES_PER_QUERY expressions for a
    table so wide that one query would pass Postgres's 1664 output columns."""
    row: list = []
    for start in range(0, len(expressions), AGGREGATES_PER_QUERY):
        cur.execute(f"SELECT {', '.join(expressions[start : start + AGGREGATES_PER_QUERY])} FROM {source}")
        row += list(cur.fetchone())
    return row


def _stats_sql(d, pairs, base_of, new_of, weights: tuple[str, str] | None = None) -> list[str]:
    """Per column and side: the non-NULL values, and for numeric columns sum, min and max (as exact
    text). A side's value is NULL on a row that side lacks, so plain aggregates need no filter (filters
    cost a third of the pass). `weights`: the multiset form, where each grouped row stands for `cb`/`cn`
    copies (0 on the side without it)."""
    parts = []
    for i, (before, after) in enumerate(pairs):
        for side, value, col in ((0, base_of(i), before), (1, new_of(i), after)):
            copies = weights[side] if weights else None
            parts.append(
                f"SUM(CASE WHEN {value} IS NOT NULL THEN {copies} ELSE 0 END)"
                if copies
                else f"COUNT({value})"
            )
            if col.numeric:
                kept = f"CASE WHEN {copies} > 0 THEN {value} END" if copies else value
                total = f"SUM({value} * {copies})" if copies else f"SUM({value})"
                parts += [d.as_text(total), d.as_text(f"MIN({kept})"), d.as_text(f"MAX({kept})")]
    return parts


def _stats(pairs, values: list, rows: tuple[int, int]) -> dict:
    """`nulls` per side is the side's rows less its non-NULL values."""
    stats, it = {}, iter(values)
    for before, after in pairs:
        entry: dict = {"nulls": [None, None]}
        for side, col in ((0, before), (1, after)):
            entry["nulls"][side] = rows[side] - _int(next(it))
            if col.numeric:
                for name in ("sum", "min", "max"):
                    entry.setdefault(name, [None, None])[side] = _number(next(it))
        stats[after.name] = entry
    return stats


def _int(value) -> int:
    return int(str(value)) if value is not None else 0


def _number(value):
    """Exact: an integer as int, anything else as the database printed it."""
    if value is None:
        return None
    text = str(value)
    try:
        return int(text)
    except ValueError:
        return text


# --- what the writers call ----------------------------------------------------------------------------------


def against_base(cur, dialect: str, new: tuple[str, str], base: tuple[str, str], key: list[str]) -> dict:
    """Per-PR isolation, after the write committed: the PR's table against the table of the schema the
    pipeline names, on the same server. Each side is (qualified SQL name, label)."""
    before = describe(cur, dialect, *base)
    after = describe(cur, dialect, *new)
    return compare(cur, dialect, before, after, key)


def against_incoming(
    cur, dialect: str, target: tuple[str, str], rows_sql: str, names: list[str], key: list[str], mode: str
) -> dict:
    """`diff: on`, inside the write's transaction before it changes anything: the target's rows against
    the incoming ones (`rows_sql` selects them with the target's column types), as the write will leave
    the table in `mode`. A comparison the server refuses gives {"unavailable": reason}: the write goes
    on, back at the savepoint taken before it (MySQL; on Postgres, ADBC sends nothing more after an
    error, so the write fails as a whole and leaves the table as it was)."""
    cur.execute("SAVEPOINT osiris_diff")  # a diff that fails must not fail the write
    try:
        before = describe(cur, dialect, *target)
        by_name = {c.name: c for c in before.columns}
        incoming = Relation(f"({rows_sql})", target[1], [by_name[n] for n in names if n in by_name])
        result = compare(cur, dialect, before, incoming, key, mode, schema_changes=False)
    except Exception as exc:  # the server's refusal (a limit, say): say so, and go on with the write
        try:
            cur.execute("ROLLBACK TO SAVEPOINT osiris_diff")
        except Exception:  # ADBC refuses any statement after an error: the write fails, nothing written
            raise exc from None
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return {"unavailable": f"the comparison failed ({type(exc).__name__}: {first})"}
    cur.execute("RELEASE SAVEPOINT osiris_diff")
    return result


def planned(base: str, key: list[str], what: str) -> str:
    """Plan mode: the diff a run would compute, in words."""
    on = f"key ({', '.join(key)})" if key else "the base table's primary key, or whole rows without one"
    return f"a data diff will compare {what} with {base}, on {on}"
