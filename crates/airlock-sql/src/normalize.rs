//! Literal normalisation for the classification cache: `... WHERE aid = 48213` and
//! `... WHERE aid = 7` both become `... WHERE aid = $1`, so texts that differ only in constants
//! (the simple query protocol inlines every value) can share one cache entry.
//!
//! # Why sharing an entry is sound
//!
//! The normaliser replaces a region only when it is certain PostgreSQL's lexer reads it as one
//! string or numeric literal token, and `$n` as one parameter token; everything else is copied
//! byte for byte, and anything it does not fully understand (comments, dollar quotes, escapes,
//! prefixed strings, odd numbers) makes it give up. So two texts with the same normal form N
//! lex to the same tokens except for the values of their literals, and their parse trees are
//! N's tree with constants where N has parameters. The walker treats a parameter wherever it
//! reads a constant's value as the most dangerous value it could be (`LIKE $1` may be
//! `LIKE '%'`), so the class of N is at least the class of every text that normalises to it:
//! the classifier is monotone in constants. The cache stores a classification under N only
//! when N classified exactly like the text it came from (class, operations, tag, PREPARE and
//! EXECUTE names), and never an unclassifiable result (a literal's value can decide whether a
//! text parses at all). A later text with the same N is therefore given a classification that
//! is at least as dangerous as its own, and equal to it whenever its literals are harmless.
//! The full argument, with the walker's audit, is in `docs/sql-classification.md`.

use std::fmt::Write as _;

/// The normal form of `sql` with each literal replaced by `$1`, `$2`, ... in order, or `None`
/// when the text has no literal or contains anything the normaliser does not fully understand.
pub fn normalize(sql: &str) -> Option<String> {
    let mut form = normal_form(sql)?;
    form.key.truncate(form.text_len);
    Some(form.key)
}

/// A normal form as the cache keys it.
pub(crate) struct Form {
    /// The normal text, then a NUL (which no normal text contains) and the lexer's kind of each
    /// literal replaced (`S` string, `I` integer, `F` other numeric), so that texts share an
    /// entry only when their literal tokens are of the same kinds: the grammar sees kinds, so
    /// such texts take the same productions (`INTERVAL '1 day'` parses, `INTERVAL 0` does not).
    pub(crate) key: String,
    /// The length of the normal text at the start of `key`.
    pub(crate) text_len: usize,
}

impl Form {
    /// The normal text, to classify.
    pub(crate) fn text(&self) -> &str {
        self.key.get(..self.text_len).unwrap_or_default()
    }
}

/// The normal form of `sql` and the kinds of its literals; see [`normalize`].
pub(crate) fn normal_form(sql: &str) -> Option<Form> {
    let b = sql.as_bytes();
    // Parameters are usually no longer than the literals they replace.
    let mut out = String::with_capacity(sql.len() + 8);
    let mut kinds = Vec::new();
    // Start of the text not yet copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let next = b.get(i + 1).copied();
        let (end, kind) = match c {
            // Dollar quotes and existing parameters, backslash escapes, NUL: not understood.
            b'$' | b'\\' | 0 => return None,
            // Comments: not understood (a comment can hide a quote or end mid-token).
            b'-' if next == Some(b'-') => return None,
            b'/' if next == Some(b'*') => return None,
            b'"' => {
                // A quoted identifier is a name, never a value: copied as it is. `""` is an
                // error to the lexer.
                let end = quoted_end(b, i, b'"')?;
                if end == i + 2 {
                    return None;
                }
                i = end;
                continue;
            }
            b'\'' => (string_literal(b, i)?, b'S'),
            b'0'..=b'9' => number_literal(b, i)?,
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => number_literal(b, i)?,
            c if is_ident(c) => {
                // A keyword or name, with any digits in it (`t1`, `true`): copied.
                i += b[i..].iter().take_while(|&&c| is_ident(c)).count();
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(sql.get(copied..i)?);
        kinds.push(kind);
        // Writing to a String cannot fail.
        let _ = write!(out, "${}", kinds.len());
        copied = end;
        i = end;
    }
    if kinds.is_empty() {
        // Nothing replaced: the exact-text cache already covers this text.
        return None;
    }
    out.push_str(sql.get(copied..)?);
    let text_len = out.len();
    out.push('\0');
    out.extend(kinds.iter().map(|&k| char::from(k)));
    Some(Form { key: out, text_len })
}

/// A byte PostgreSQL's lexer reads as part of an identifier or keyword (`ident_cont`, where
/// every byte of a multi-byte character counts).
fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Whitespace as the lexer skips it (with `\v`, which only newer lexers skip: treating more
/// bytes as whitespace only makes the concatenation check below bail more often).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The end (one past the closing quote) of the quoted token opening at `start`, where a doubled
/// quote stands for itself; `None` when unterminated. Also `None` when the token holds what
/// `normalize` refuses anywhere (`$`, backslash, NUL, comment openers): harmless inside quotes
/// as the door's server reads them, but not worth being clever about.
fn quoted_end(b: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut i = start + 1;
    loop {
        let c = *b.get(i)?;
        let next = b.get(i + 1).copied();
        if matches!(c, b'$' | b'\\' | 0)
            || (c == b'-' && next == Some(b'-'))
            || (c == b'/' && next == Some(b'*'))
        {
            return None;
        }
        if c == quote {
            if next != Some(quote) {
                return Some(i + 1);
            }
            i += 1;
        }
        i += 1;
    }
}

/// The end of the plain string literal opening at `start`, or `None` when it may be anything
/// else. The door pins `standard_conforming_strings = on`, so a backslash is not an escape
/// (and `normalize` bails on backslashes anyway).
fn string_literal(b: &[u8], start: usize) -> Option<usize> {
    // `E'...'`, `B'...'`, `X'...'`, `N'...'`, `U&'...'`, or a string glued to a name.
    if start > 0 && b.get(start - 1).is_some_and(|&p| is_ident(p) || p == b'&') {
        return None;
    }
    let end = quoted_end(b, start, b'\'')?;
    // A string glued to a name (`'a'x`) or a number: `$1x` would be one bad parameter token.
    if b.get(end).is_some_and(|&n| is_ident(n) || n == b'.') {
        return None;
    }
    // `'a'` newline `'b'` is one literal `'ab'`: leave any string followed by another alone.
    let after = b[end..].iter().position(|&c| !is_space(c));
    if after.is_some_and(|k| b.get(end + k) == Some(&b'\'')) {
        return None;
    }
    Some(end)
}

/// The end and kind of the decimal numeric literal starting at `start` (a digit, or `.` and a
/// digit): digits, an optional `.` and digits, an optional exponent. `None` when it is part of
/// something else (`t1.5`, `1.2.3`) or followed by junk the lexer reads differently (`1_000`,
/// `0x1F`, `5abc`, `1e`, `5'x'`).
fn number_literal(b: &[u8], start: usize) -> Option<(usize, u8)> {
    if start > 0
        && b.get(start - 1)
            .is_some_and(|&p| is_ident(p) || matches!(p, b'.' | b'"' | b')' | b']'))
    {
        return None;
    }
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = start + digits(start);
    // The lexer's ICONST: digits only, within int4 (a larger integer is an FCONST).
    let integer = std::str::from_utf8(&b[start..i])
        .ok()
        .is_some_and(|d| d.parse::<i32>().is_ok());
    if b.get(i) == Some(&b'.') {
        i += 1;
        i += digits(i);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let exp = digits(i + 1 + sign);
        if exp > 0 {
            i += 1 + sign + exp;
        }
    }
    if b.get(i)
        .is_some_and(|&n| is_ident(n) || matches!(n, b'.' | b'\''))
    {
        return None;
    }
    let whole_integer = integer && i == start + digits(start);
    Some((i, if whole_integer { b'I' } else { b'F' }))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    fn n(s: &str) -> Option<String> {
        normalize(s)
    }

    #[test]
    fn literals_become_parameters_in_order() {
        for (text, form) in [
            // pgbench's statements.
            (
                "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
                "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
            ),
            (
                "UPDATE pgbench_accounts SET abalance = abalance + -4012 WHERE aid = 7;",
                "UPDATE pgbench_accounts SET abalance = abalance + -$1 WHERE aid = $2;",
            ),
            (
                "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, -4, CURRENT_TIMESTAMP);",
                "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, -$4, CURRENT_TIMESTAMP);",
            ),
            // Doubled quotes in strings; quoted identifiers with digits and quotes untouched.
            (
                "SELECT 'it''s', \"a\"\"1'2\" FROM t9 WHERE x='' AND y = 'a\"b'",
                "SELECT $1, \"a\"\"1'2\" FROM t9 WHERE x=$2 AND y = $3",
            ),
            (
                "SELECT 1.5, .5, 5., 1e10, 2.5E-3, 7e+2 FROM \"t 42\"",
                "SELECT $1, $2, $3, $4, $5, $6 FROM \"t 42\"",
            ),
            (
                "SELECT '5'::int, x::numeric(10,2), a[1:2]",
                "SELECT $1::int, x::numeric($2,$3), a[$4:$5]",
            ),
            (
                "SELECT 'a' ||\n'b'; SELECT ' é ' FROM café1",
                "SELECT $1 ||\n$2; SELECT $3 FROM café1",
            ),
        ] {
            assert_eq!(n(text).as_deref(), Some(form), "{text}");
        }
    }

    #[test]
    fn no_form_without_literals_or_for_anything_not_understood() {
        for s in [
            "",
            "COMMIT",
            "SELECT true, false, null FROM t1",
            "SELECT \"1\" FROM x.y",
            "SELECT $1, 5",
            "SELECT $$x$$, 5",
            "SELECT $a$x$a$",
            "SELECT 'a\\'b'",
            "SELECT 1 -- c",
            "SELECT /* c */ 1",
            "SELECT 1\0",
            "SELECT \"unterminated, 1",
            "SELECT 'unterminated, 1",
            "SELECT E'x'",
            "SELECT e'x'",
            "SELECT B'101'",
            "SELECT X'1F'",
            "SELECT N'x'",
            "SELECT U&'x'",
            "SELECT date'2020-01-01'",
            "SELECT 'a'\n'b'",
            "SELECT 'a' 'b'",
            "SELECT 'a'x",
            "SELECT 'a'.b",
            "SELECT 1_000",
            "SELECT 0x1F",
            "SELECT 0o17",
            "SELECT 0b101",
            "SELECT 5abc",
            "SELECT 1.2.3",
            "SELECT 1..2",
            "SELECT 1e",
            "SELECT 1e+",
            "SELECT 5'x'",
            "SELECT t.5",
            "SELECT (x).5",
            "SELECT 1é",
            "SELECT '$1', 5",
            "SELECT 'a\\b', 5",
            "SELECT '--', 5",
            "SELECT '/*', 5",
            "SELECT \"a$\", 5",
            "SELECT \"\", 5",
        ] {
            assert_eq!(n(s), None, "{s:?}");
        }
    }

    #[test]
    fn the_key_holds_the_kinds_of_the_literals() {
        let f = super::normal_form("SELECT 'a', 1, 2147483648, 1.5, .5e3, 007").map(|f| f.key);
        assert_eq!(f.as_deref(), Some("SELECT $1, $2, $3, $4, $5, $6\0SIFFFI"));
    }

    #[test]
    fn a_string_literal_leaves_no_trace() {
        let out = n("DELETE FROM t WHERE name LIKE '%secret%' AND id = 4").unwrap_or_default();
        assert_eq!(out, "DELETE FROM t WHERE name LIKE $1 AND id = $2");
    }
}
