//! SQL classification: what a PostgreSQL query string would do, statement by statement.
//!
//! Pure functions of the text and a [`SqlConfig`], no I/O. The text is parsed by the real
//! PostgreSQL parser (libpg_query via `pg_query`), the whole parse tree of each statement is
//! walked, and a statement's class is the most dangerous thing anywhere inside it. Anything that
//! cannot be parsed or exceeds a limit is one destructive statement (fail closed). The rules and
//! the reasoning behind the borderline ones are in `docs/sql-classification.md`.

mod cache;
mod functions;
mod walk;

pub use airlock_classify::Operation;
use airlock_core::OpClass;
pub use cache::{CacheStats, Classifier};

/// The tag of a statement that could not be classified at all.
pub const UNCLASSIFIABLE: &str = "UNCLASSIFIABLE";

/// Stack for the thread that runs the parser: libpg_query's tree output recurses once per
/// nesting level (about 2.4 KiB a level in a debug build), so a hostile input must be stopped by
/// [`MAX_NESTING`] well before the end of the stack. Reserved, not committed: untouched pages
/// cost nothing.
const PARSE_STACK: usize = 128 << 20;

/// Most tokens that may stand in one comma-separated segment, counted over all enclosing
/// parentheses (see [`nesting_bound`]). A parse tree is at most a few nodes deeper than this, so
/// the C recursion stays within [`PARSE_STACK`]. Legitimate queries are far below it; the
/// protobuf decoder already refuses trees more than 100 messages deep.
const MAX_NESTING: usize = 5_000;

/// Texts this short cannot nest deeply enough to exhaust [`PARSE_STACK`] even at one level per
/// byte, so the extra scan is skipped for them.
const SHORT: usize = 16 << 10;

/// How the classifier is tuned; the gateway reads it from TOML.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// Functions to treat as side-effect free besides the built-in list, written as they are
    /// called: `my_pure_fn`, or `myschema.my_pure_fn` for a schema-qualified call.
    pub safe_functions: Vec<String>,
    /// Longest query text classified; longer ones are destructive (bounds parse time and memory).
    pub max_bytes: usize,
    /// Deepest parse tree walked; deeper ones are destructive (bounds the walk's recursion).
    pub max_depth: usize,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            safe_functions: Vec::new(),
            max_bytes: 1 << 20,
            max_depth: 1000,
        }
    }
}

/// One statement of a query string.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Statement {
    /// The most dangerous thing anywhere in the statement; equal to the highest operation class.
    pub class: OpClass,
    /// What the statement does to which tables, schemas, functions, roles and settings; never
    /// empty, so `max` over operations is the statement's class.
    pub operations: Vec<Operation>,
    /// pg_query's fingerprint of the statement (the same for queries differing only in
    /// constants), for grouping in audit and approvals; empty when it cannot be computed.
    pub fingerprint: String,
    /// The command tag, e.g. `SELECT`, `DROP TABLE`, `UNCLASSIFIABLE`.
    pub tag: String,
    /// Why things were classified as they were, for humans.
    pub notes: Vec<String>,
    /// For `PREPARE name AS stmt`: the name and the class an `EXECUTE name` will have, so the
    /// proxy can remember it.
    pub prepared: Option<(String, OpClass)>,
    /// For a statement that runs `EXECUTE name` (directly or under EXPLAIN ANALYZE): the name.
    /// Its class here is destructive; the proxy raises it from what it remembered, or keeps it.
    pub executes: Option<String>,
}

/// The classification of a whole query string.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SqlClassification {
    /// Every statement, in order; never empty.
    pub statements: Vec<Statement>,
}

impl SqlClassification {
    /// The most dangerous class of any statement; destructive when there are none.
    pub fn class(&self) -> OpClass {
        self.statements
            .iter()
            .map(|s| s.class)
            .max()
            .unwrap_or(OpClass::Destructive)
    }

    /// Every operation of every statement, as the gateway's decision path takes them.
    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.statements.iter().flat_map(|s| s.operations.iter())
    }
}

/// Classifies every statement of `sql`.
///
/// Never panics and never aborts the process on hostile input: the parse runs on its own thread
/// with a large stack, and any failure is one destructive statement with a note.
pub fn classify(sql: &str, cfg: &SqlConfig) -> SqlClassification {
    if sql.len() > cfg.max_bytes {
        return unclassifiable(format!(
            "query is {} bytes, over the {} byte limit",
            sql.len(),
            cfg.max_bytes
        ));
    }
    let run = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("airlock-sql-parse".to_string())
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, || classify_here(sql, cfg))
            .map(|h| h.join())
    });
    match run {
        Ok(Ok(c)) => c,
        Ok(Err(_)) => unclassifiable("the parser failed".to_string()),
        Err(e) => unclassifiable(format!("cannot start the parser thread: {e}")),
    }
}

/// The statement for `EXECUTE name` when the proxy does not know what `name` was prepared as:
/// destructive, with a note saying why.
pub fn classify_execute(name: &str) -> Statement {
    let mut s = unclassifiable_statement(walk::execute_note(name));
    s.tag = "EXECUTE".to_string();
    s.executes = Some(name.to_string());
    if let Some(op) = s.operations.first_mut() {
        op.action = "EXECUTE".to_string();
    }
    s
}

/// The classification itself, on the current thread.
fn classify_here(sql: &str, cfg: &SqlConfig) -> SqlClassification {
    if sql.len() > SHORT {
        match nesting_bound(sql) {
            Ok(n) if n <= MAX_NESTING => {}
            Ok(n) => {
                return unclassifiable(format!(
                    "query nests up to {n} tokens deep, over the {MAX_NESTING} limit"
                ))
            }
            Err(e) => return unclassifiable(format!("cannot scan: {e}")),
        }
    }
    let parsed = match pg_query::parse(sql) {
        Ok(p) => p,
        Err(e) => return unclassifiable(format!("cannot parse: {e}")),
    };
    if parsed.protobuf.stmts.is_empty() {
        return unclassifiable("no statement".to_string());
    }
    let mut statements = Vec::with_capacity(parsed.protobuf.stmts.len());
    for raw in &parsed.protobuf.stmts {
        let text = statement_text(sql, raw.stmt_location, raw.stmt_len);
        let fingerprint = text
            .and_then(|t| pg_query::fingerprint(t).ok())
            .map(|f| f.hex)
            .unwrap_or_default();
        let tree = match serde_json::to_value(&raw.stmt) {
            Ok(t) => t,
            Err(e) => {
                statements.push(unclassifiable_statement(format!(
                    "cannot read the parse tree: {e}"
                )));
                continue;
            }
        };
        statements.push(statement(&tree, fingerprint, cfg));
    }
    SqlClassification { statements }
}

fn statement(tree: &serde_json::Value, fingerprint: String, cfg: &SqlConfig) -> Statement {
    let w = walk::walk(tree, &cfg.safe_functions, cfg.max_depth);
    if w.too_deep {
        let mut s =
            unclassifiable_statement(format!("parse tree deeper than {} levels", cfg.max_depth));
        s.fingerprint = fingerprint;
        return s;
    }
    let mut notes = w.notes;
    let class = w.class.unwrap_or_else(|| {
        notes.push("nothing classifiable found: destructive".to_string());
        OpClass::Destructive
    });
    let tag = if w.tag.is_empty() {
        UNCLASSIFIABLE.to_string()
    } else {
        w.tag
    };
    let mut operations = w.ops;
    // INVARIANT: operations are never empty and their highest class is the statement's class.
    if operations.iter().map(|o| o.class).max() != Some(class) {
        operations.push(Operation {
            action: tag.clone(),
            class,
            resource_kind: String::new(),
            resource_id: None,
        });
    }
    Statement {
        class,
        operations,
        fingerprint,
        tag,
        notes,
        prepared: w.prepared,
        executes: w.executes,
    }
}

/// An upper bound (up to a small factor) on how deep the parse tree of `sql` can be, from the
/// scanner's flat token list: the tokens since the last comma or semicolon at each parenthesis
/// level, plus one per open parenthesis, summed over the open levels. Every level of a parse
/// tree consumes at least one token of its own that no comma separates from its children, so a
/// long `1 + 1 + ...` or `- - - 1` chain counts fully, while long lists (`VALUES`, `IN (...)`)
/// do not accumulate.
fn nesting_bound(sql: &str) -> Result<usize, pg_query::Error> {
    use pg_query::protobuf::Token;
    let scanned = pg_query::scan(sql)?;
    // One counter per open parenthesis level, the outermost first.
    let mut levels: Vec<usize> = vec![0];
    let mut total = 0usize;
    let mut max = 0usize;
    for t in &scanned.tokens {
        if t.token == Token::Ascii40 as i32 {
            levels.push(0);
            total += 1;
        } else if t.token == Token::Ascii41 as i32 {
            if levels.len() > 1 {
                let inner = levels.pop().unwrap_or(0);
                total = total.saturating_sub(inner + 1);
            }
        } else if t.token == Token::Ascii44 as i32 || t.token == Token::Ascii59 as i32 {
            if let Some(current) = levels.last_mut() {
                total = total.saturating_sub(*current);
                *current = 0;
            }
        } else if let Some(current) = levels.last_mut() {
            *current += 1;
            total += 1;
        }
        max = max.max(total);
    }
    Ok(max)
}

/// The text of one statement: libpg_query gives byte offsets, and a length of 0 for the last
/// statement (up to the end of the string).
fn statement_text(sql: &str, location: i32, len: i32) -> Option<&str> {
    let start = usize::try_from(location).ok()?;
    let len = usize::try_from(len).ok()?;
    if len == 0 {
        sql.get(start..)
    } else {
        sql.get(start..start.checked_add(len)?)
    }
}

fn unclassifiable(why: String) -> SqlClassification {
    SqlClassification {
        statements: vec![unclassifiable_statement(why)],
    }
}

fn unclassifiable_statement(why: String) -> Statement {
    Statement {
        class: OpClass::Destructive,
        operations: vec![Operation {
            action: UNCLASSIFIABLE.to_string(),
            class: OpClass::Destructive,
            resource_kind: String::new(),
            resource_id: None,
        }],
        fingerprint: String::new(),
        tag: UNCLASSIFIABLE.to_string(),
        notes: vec![format!("{why}: treated as destructive")],
        prepared: None,
        executes: None,
    }
}
