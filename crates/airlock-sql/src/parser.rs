//! The parser threads: where libpg_query (recursive C) runs.
//!
//! A persistent pool, not a thread per call: spawning a thread with a large stack costs more than
//! the parse itself. Only the C work (scan, parse, fingerprint) runs here; the protobuf tree that
//! comes back is at most 100 messages deep (prost's decoder refuses deeper ones), so walking and
//! dropping it on the caller's stack is safe.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

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
pub(crate) const SHORT: usize = 16 << 10;

/// One statement as the parser threads return it.
pub(crate) struct Parsed {
    /// The statement's parse tree.
    pub(crate) stmt: Option<Box<pg_query::protobuf::Node>>,
    /// pg_query's fingerprint of the statement's text; empty when it cannot be computed.
    pub(crate) fingerprint: String,
}

type Reply = Result<Vec<Parsed>, String>;
type Job = (String, bool, mpsc::SyncSender<Reply>);

/// The job queue of the pool, started on first use; `None` when no thread could be started.
static POOL: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();

fn pool() -> Option<&'static mpsc::Sender<Job>> {
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let n = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let mut started = 0;
        for i in 0..n {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("airlock-sql-parse-{i}"))
                .stack_size(PARSE_STACK)
                .spawn(move || worker(&rx));
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job; idle workers queue on it.
        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((sql, fingerprints, reply)) = job else {
            return;
        };
        let result = std::panic::catch_unwind(|| parse_here(&sql, fingerprints))
            .unwrap_or_else(|_| Err("the parser failed".to_string()));
        // The caller may have gone; nothing to do then.
        let _ = reply.send(result);
    }
}

/// Parses `sql` on a parser thread: every statement's tree and (when asked) fingerprint, or why
/// it cannot be.
pub(crate) fn parse(sql: &str, fingerprints: bool) -> Reply {
    let Some(tx) = pool() else {
        return Err("cannot start the parser threads".to_string());
    };
    let (reply, answer) = mpsc::sync_channel(1);
    tx.send((sql.to_string(), fingerprints, reply))
        .map_err(|_| "the parser threads are gone".to_string())?;
    answer.recv().map_err(|_| "the parser failed".to_string())?
}

fn parse_here(sql: &str, fingerprints: bool) -> Reply {
    if sql.len() > SHORT {
        match nesting_bound(sql) {
            Ok(n) if n <= MAX_NESTING => {}
            Ok(n) => {
                return Err(format!(
                    "query nests up to {n} tokens deep, over the {MAX_NESTING} limit"
                ))
            }
            Err(e) => return Err(format!("cannot scan: {e}")),
        }
    }
    // Cheap test first: the ambiguity needs a backslash right before a quote.
    if sql.contains("\\'") {
        backslash_quote(sql)?;
    }
    let parsed = pg_query::parse(sql).map_err(|e| format!("cannot parse: {e}"))?;
    if parsed.protobuf.stmts.is_empty() {
        return Err("no statement".to_string());
    }
    Ok(parsed
        .protobuf
        .stmts
        .into_iter()
        .map(|raw| {
            let fingerprint = statement_text(sql, raw.stmt_location, raw.stmt_len)
                .filter(|_| fingerprints)
                .and_then(|t| pg_query::fingerprint(t).ok())
                .map(|f| f.hex)
                .unwrap_or_default();
            Parsed {
                stmt: raw.stmt,
                fingerprint,
            }
        })
        .collect())
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

/// Refuses a standard string literal with a backslash before a quote (`'C:\'`). The parser
/// reads strings as PostgreSQL does with `standard_conforming_strings` on (the default); a
/// server where it is off reads `\'` as an escaped quote, so the string goes on and what
/// followed it here (`'x\', $$'; DROP TABLE t; --$$`: one SELECT) runs as statements
/// there. Escape strings (`E'...'`), dollar quotes and comments read the same either way.
fn backslash_quote(sql: &str) -> Result<(), String> {
    use pg_query::protobuf::Token;
    let scanned = pg_query::scan(sql).map_err(|e| format!("cannot scan: {e}"))?;
    for t in &scanned.tokens {
        if t.token != Token::Sconst as i32 {
            continue;
        }
        let raw = usize::try_from(t.start)
            .ok()
            .zip(usize::try_from(t.end).ok())
            .and_then(|(s, e)| sql.get(s..e))
            .unwrap_or_default();
        // `'...'` and `N'...'` are standard strings; `E'...'` and `$$...$$` are not.
        let standard = raw.starts_with('\'') || raw.starts_with("N'") || raw.starts_with("n'");
        if standard && raw.contains("\\'") {
            return Err(
                "a string literal has a backslash before a quote, which a server with \
                 standard_conforming_strings off reads differently"
                    .to_string(),
            );
        }
    }
    Ok(())
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
