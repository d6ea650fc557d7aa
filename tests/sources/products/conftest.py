"""Fixtures for the products source: a table holding every built-in PostgreSQL type, special values included."""

from __future__ import annotations

import psycopg2
import pytest

from sandbox.postgres import PostgresServer, to_libpq_url

ALL_TYPES_TABLE = "all_types"

# Every built-in type a column can have, plus a domain, an enum, a composite type, arrays, ranges and
# multiranges. `id`, `updated_at` and `deleted_at` are what the products source needs of a catalogue
# table. `xml` values are set afterwards (XML_VALUES): see there.
ALL_TYPES_DDL = """
DROP TABLE IF EXISTS all_types CASCADE;
DROP TYPE IF EXISTS mood CASCADE;
DROP TYPE IF EXISTS pair CASCADE;
DROP DOMAIN IF EXISTS positive_price CASCADE;
DROP DOMAIN IF EXISTS short_code CASCADE;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN positive_price AS numeric(12,2) CHECK (VALUE >= 0);
CREATE DOMAIN short_code AS varchar(8);
CREATE TABLE all_types (
  id bigint PRIMARY KEY,
  updated_at timestamptz NOT NULL DEFAULT '2024-06-01 00:00:00+00',
  deleted_at timestamptz,
  c_smallint smallint, c_integer integer, c_bigint bigint,
  c_numeric numeric, c_numeric_12_2 numeric(12,2), c_numeric_30_20 numeric(30,20),
  c_numeric_38_0 numeric(38,0), c_numeric_50_10 numeric(50,10), c_numeric_negative_scale numeric(5,-2),
  c_numeric_scale_over_precision numeric(3,5),
  c_real real, c_double double precision, c_money money,
  c_text text, c_varchar varchar(20), c_char char(5), c_internal_char "char", c_name name,
  c_bytea bytea,
  c_date date, c_timestamp timestamp, c_timestamptz timestamptz, c_timestamp3 timestamp(3),
  c_time time, c_timetz timetz, c_interval interval,
  c_boolean boolean, c_enum mood,
  c_point point, c_line line, c_lseg lseg, c_box box, c_path path, c_polygon polygon, c_circle circle,
  c_inet inet, c_cidr cidr, c_macaddr macaddr, c_macaddr8 macaddr8,
  c_bit bit(4), c_varbit varbit(16),
  c_tsvector tsvector, c_tsquery tsquery,
  c_uuid uuid, c_xml xml, c_json json, c_jsonb jsonb, c_jsonpath jsonpath,
  c_int_array integer[], c_text_array text[], c_numeric_array numeric[], c_tstz_array timestamptz[],
  c_int_2d integer[][],
  c_int4range int4range, c_int8range int8range, c_numrange numrange, c_tsrange tsrange,
  c_tstzrange tstzrange, c_daterange daterange,
  c_int4multirange int4multirange, c_datemultirange datemultirange,
  c_domain_numeric positive_price, c_domain_varchar short_code, c_composite pair,
  c_oid oid, c_regclass regclass, c_regtype regtype, c_regproc regproc,
  c_xid xid, c_xid8 xid8, c_cid cid, c_tid tid, c_pg_lsn pg_lsn,
  c_pg_snapshot pg_snapshot, c_txid_snapshot txid_snapshot, c_int2vector int2vector, c_oidvector oidvector
);
-- 1: ordinary values, extremes of each width
INSERT INTO all_types VALUES (
  1, DEFAULT, NULL, -32768, -2147483648, -9223372036854775808,
  1.123456789012345, 9999999999.99, 1234567890.12345678901234567890,
  12345678901234567890123456789012345678, 1234567890123456789012345678901234567890.0123456789, 1234567,
  0.00123,
  1.1, 2.718281828459045, '-92233720368547758.08',
  'héllo ☕ "quoted", back\\slash', 'abc', 'ab', 'x', 'nm',
  '\\xdeadbeef',
  '2024-02-29', '2024-01-01 12:00:00.123456', '2024-01-01 12:00:00.123456+02', '2024-01-01 12:00:00.123',
  '23:59:59.999999', '12:34:56+05:30', '1 year 2 mons 3 days 04:05:06.789',
  true, 'happy',
  '(1,2)', '{1,2,3}', '[(0,0),(1,1)]', '((0,0),(1,1))', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(2,0))',
  '<(0,0),5>',
  '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
  B'1010', B'101',
  'a fat cat', 'fat & rat',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', NULL, '{"a": 1, "b": [1, 2]}', '{"big": 12345678901234567890, "n": null}',
  '$.a[*]',
  '{1,2,NULL}', '{"a,b", "c\\"d"}', '{1.5, NaN}', '{infinity, 2024-01-01 00:00:00+00}', '{{1,2},{3,4}}',
  '[1,5)', '[1,10]', '(1.5,2.5]', '[2024-01-01,2024-02-01)', '[2024-01-01 00:00+00,infinity)',
  '[2024-01-01,2024-02-01)',
  '{[1,3),[5,7)}', '{[2024-01-01,2024-01-05)}',
  12.34, 'CODE1', ROW(1, 'x'),
  4294967295, 'pg_class', 'integer', 'now', '123', '123', '5', '(0,1)', '16/B374D848',
  '10:20:10,14,15', '10:20:10,14,15', '1 2', '1 2'
);
-- 2: the other extremes, empty values, NaN and the infinities
INSERT INTO all_types (id, c_smallint, c_integer, c_bigint, c_numeric, c_numeric_12_2, c_numeric_30_20,
  c_real, c_double, c_money, c_text, c_varchar, c_char, c_bytea, c_date, c_timestamp, c_timestamptz,
  c_timestamp3, c_time, c_timetz, c_interval, c_boolean, c_enum, c_inet, c_cidr, c_bit, c_varbit,
  c_tsvector, c_json, c_jsonb, c_int_array, c_text_array, c_numeric_array, c_int4range,
  c_int4multirange, c_oid)
VALUES (2, 32767, 2147483647, 9223372036854775807, 0.00000000006, 'NaN', 'NaN',
  'NaN', 'Infinity', '92233720368547758.07', '', '', '', '', 'infinity', 'infinity', 'infinity',
  '-infinity', '24:00:00', '00:00+00', '-178000000 years', false, 'sad', '::1', '::/0', B'0000', B'',
  '', '[]', '{}', '{}', '{}', '{}', 'empty', '{}', 0);
-- 3: negative infinities, more numerics
INSERT INTO all_types (id, c_numeric, c_real, c_double, c_date, c_timestamp, c_timestamptz, c_timestamp3)
VALUES (3, 12345678901234567890.5, '-Infinity', '-Infinity', '-infinity', '-infinity', '-infinity', 'infinity');
-- 4: finite dates no warehouse holds (BC, past year 9999)
INSERT INTO all_types (id, c_numeric, c_date, c_timestamp, c_timestamptz)
VALUES (4, 2.718281828459045, '4713-01-01 BC', '0001-01-01 00:00:00 BC', '294276-12-31 23:59:59.999999+00');
-- 5, 6: unconstrained numeric's own special values; 7: every column NULL
INSERT INTO all_types (id, c_numeric) VALUES (5, '-Infinity'), (6, 'NaN'), (7, NULL);
GRANT SELECT ON all_types TO shop_reader;
"""

# pgserver 16 is built without libxml, so PostgreSQL cannot parse xml input (`'<a/>'::xml` fails with
# "unsupported XML feature"); its output and its binary-coercible cast to text need no libxml. The
# fixture stores these texts as xml datums through a temporary binary-coercible cast from bytea (a
# superuser's), so the column holds real xml values and the source's read of them (cast to text
# server-side) is tested. Not tested here: anything libxml does - validating input (these values are
# stored as given, not checked for well-formedness) or rewriting the XML declaration on output.
XML_VALUES = {
    1: '<?xml version="1.0" encoding="UTF-8"?>\n<order id="1"><note lang="fr">déjà &amp; ☕</note></order>',
    2: "text before <b>bold</b>\n<!-- a comment --><![CDATA[<raw>]]> and after",
}

# Unconstrained numeric values the issue names, and the exact text each must arrive as.
UNCONSTRAINED_NUMERIC = {
    1: "1.123456789012345",
    2: "0.00000000006",
    3: "12345678901234567890.5",
    4: "2.718281828459045",
    5: "-Infinity",
    6: "NaN",
    7: None,
}


@pytest.fixture
def all_types_table(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The all-types table in the sandbox PostgreSQL, with the products source pointed at it."""
    with psycopg2.connect(to_libpq_url(postgres_server.dsn)) as conn, conn.cursor() as cur:
        cur.execute(ALL_TYPES_DDL)
    conn.close()
    superuser = superuser_connection(postgres_server)
    try:
        with superuser, superuser.cursor() as cur:  # one transaction: the cast never outlives it
            cur.execute("CREATE CAST (bytea AS xml) WITHOUT FUNCTION")
            for row_id, text in XML_VALUES.items():
                cur.execute(
                    f"UPDATE {ALL_TYPES_TABLE} SET c_xml = convert_to(%s, 'UTF8')::xml WHERE id = %s",
                    (text, row_id),
                )
            cur.execute("DROP CAST (bytea AS xml)")
    finally:
        superuser.close()
    for key, value in postgres_server.dlt_credentials().items():
        monkeypatch.setenv(f"SOURCES__PRODUCTS__CREDENTIALS__{key.upper()}", str(value))
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", f'["{ALL_TYPES_TABLE}"]')
    return ALL_TYPES_TABLE


def superuser_connection(server: PostgresServer) -> psycopg2.extensions.connection:
    """A superuser session over the server's private socket (to create an extension)."""
    return psycopg2.connect(
        host=str(server._socket_dir),
        port=server.port,
        user="postgres",
        dbname=server.database,
    )
