//! SQL classification: what a PostgreSQL query string would do, statement by statement.
//!
//! Pure functions of the text and a [`SqlConfig`], no I/O. The text is parsed by the real
//! PostgreSQL parser (libpg_query via `pg_query`), the whole parse tree of each statement is
//! walked, and a statement's class is the most dangerous thing anywhere inside it. Anything that
//! cannot be parsed or exceeds a limit is one destructive statement (fail closed). The rules and
//! the reasoning behind the borderline ones are in `docs/sql-classification.md`.

mod cache;
mod functions;
mod normalize;
mod parser;
mod walk;

pub use airlock_classify::Operation;
use airlock_core::OpClass;
pub use cache::{CacheStats, Classifier};
pub use normalize::normalize;

/// The tag of a statement that could not be classified at all.
pub const UNCLASSIFIABLE: &str = "UNCLASSIFIABLE";

/// How the classifier is tuned; the gateway reads it from TOML.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// Functions to treat as side-effect free besides the built-in list, written as they are
    /// called: `my_pure_fn`, or `myschema.my_pure_fn` for a schema-qualified call.
    pub safe_functions: Vec<String>,
    /// Operators to treat as side-effect free besides the built-in ones, written as they are
    /// used: `<=>` (pgvector's cosine distance), or `myschema.===` for `OPERATOR(myschema.===)`.
    pub safe_operators: Vec<String>,
    /// Longest query text classified; longer ones are destructive (bounds parse time and memory).
    pub max_bytes: usize,
    /// Deepest parse tree walked; deeper ones are destructive (bounds the walk's recursion).
    pub max_depth: usize,
    /// Compute pg_query's fingerprint of each statement (about a tenth of a cold
    /// classification); a caller that does not group statements by it turns it off.
    pub fingerprints: bool,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            safe_functions: Vec::new(),
            safe_operators: Vec::new(),
            max_bytes: 1 << 20,
            max_depth: 1000,
            fingerprints: true,
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
/// Never panics and never aborts the process on hostile input: the C parser runs on a pool of
/// threads with a large stack behind a nesting bound, and any failure is one destructive
/// statement with a note. Blocks the calling thread for the parse (typically well under a
/// millisecond); an async caller with long queries may prefer `spawn_blocking`.
pub fn classify(sql: &str, cfg: &SqlConfig) -> SqlClassification {
    if sql.len() > cfg.max_bytes {
        return unclassifiable(format!(
            "query is {} bytes, over the {} byte limit",
            sql.len(),
            cfg.max_bytes
        ));
    }
    let parsed = match parser::parse(sql, cfg.fingerprints) {
        Ok(p) => p,
        Err(why) => return unclassifiable(why),
    };
    let statements = parsed
        .into_iter()
        .map(|p| match serde_json::to_value(&p.stmt) {
            Ok(tree) => statement(&tree, p.fingerprint, cfg),
            Err(e) => unclassifiable_statement(format!("cannot read the parse tree: {e}")),
        })
        .collect();
    SqlClassification { statements }
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

fn statement(tree: &serde_json::Value, fingerprint: String, cfg: &SqlConfig) -> Statement {
    let w = walk::walk(tree, cfg);
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
