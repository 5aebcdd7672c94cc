//! Human tables and JSON for scripts, from the same values.

use serde::Serialize;
use std::io::Write;
use time::OffsetDateTime;

/// `println!` that hands back a failed write instead of panicking, so that a reader closing
/// the pipe (`airlock … | head`) ends the command quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::output::stdout_error)
    }};
}

/// `print!` that hands back a failed write instead of panicking (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*).map_err($crate::output::stdout_error)
    }};
}

/// Standard output's reader went away (`airlock … | head`): not a failure to report.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// A failed write to standard output: a closed pipe becomes [`StdoutClosed`].
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("cannot write to standard output")
    }
}

/// Whether `e` is standard output closing under the command.
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<StdoutClosed>())
}

/// Where results go and in which form.
pub struct Output {
    json: bool,
}

impl Output {
    /// Human output unless `json`.
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// Whether the caller asked for JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Prints one value as pretty JSON.
    pub fn value<T: Serialize>(&self, v: &T) -> anyhow::Result<()> {
        // Serialized first, so that a write error is an I/O error and a closed pipe is seen as one.
        let text = serde_json::to_string_pretty(v)?;
        outln!("{text}")
    }

    /// Prints values as JSON lines, one object per line.
    pub fn lines<T: Serialize>(&self, items: &[T]) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        for i in items {
            let line = serde_json::to_string(i)?;
            writeln!(out, "{line}").map_err(stdout_error)?;
        }
        Ok(())
    }

    /// Prints an aligned table.
    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
        // Cells hold operator- and agent-supplied text: escape control characters so nobody can
        // forge table rows or terminal escapes with a newline in a purpose or a reason.
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(|c| c.escape_debug().to_string()).collect())
            .collect();
        let rows = &rows;
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for r in rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = std::io::stdout().lock();
        let line = |cells: Vec<&str>| -> String {
            let n = cells.len();
            let mut s = String::new();
            for (i, (c, w)) in cells.into_iter().zip(&widths).enumerate() {
                s.push_str(c);
                if i + 1 < n {
                    s.push_str(&" ".repeat(w.saturating_sub(c.chars().count()) + 2));
                }
            }
            s
        };
        writeln!(out, "{}", line(header.to_vec())).map_err(stdout_error)?;
        for r in rows {
            writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))
                .map_err(stdout_error)?;
        }
        if rows.is_empty() {
            writeln!(out, "(none)").map_err(stdout_error)?;
        }
        Ok(())
    }
}

/// A timestamp for humans: RFC 3339 to the second, UTC.
pub fn when(t: OffsetDateTime) -> String {
    airlock_core::fmt_time(t)
}

/// Parses a point in time: RFC 3339, or a duration relative to `now` (`+2h` ahead, `2h` or
/// `-2h` ago).
pub fn parse_time(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let (ahead, rest) = match s.as_bytes().first() {
        Some(b'+') => (true, &s[1..]),
        Some(b'-') => (false, &s[1..]),
        _ => (false, s),
    };
    let d = humantime::parse_duration(rest).map_err(|_| {
        format!("invalid time `{s}`: expected RFC 3339 (2026-11-23T12:00:00Z) or a duration like `+2h` (ahead) or `30m` (ago)")
    })?;
    let out_of_range =
        || format!("time `{s}` is out of range; use a date between years 1 and 9999");
    let d = time::Duration::try_from(d).map_err(|_| out_of_range())?;
    let t = if ahead {
        now.checked_add(d)
    } else {
        now.checked_sub(d)
    };
    t.ok_or_else(out_of_range)
}

/// Reads at most `limit` bytes of stdin; more is refused rather than buffered without bound.
pub fn read_stdin_limited(limit: usize, what: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)?;
    if buf.len() > limit {
        zeroize::Zeroize::zeroize(&mut buf);
        return Err(crate::exit::fail(
            crate::exit::INVALID,
            format!("refused: {what} on stdin is longer than {limit} bytes"),
        ));
    }
    Ok(buf)
}
