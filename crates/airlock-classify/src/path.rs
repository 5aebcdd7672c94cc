//! Path normalisation: the one canonical form both the rules and the upstream see.
//!
//! The gateway forwards the normalised path, so whatever trick a client plays with encodings,
//! dot segments or doubled slashes, the upstream receives exactly the path that was classified.
//! Anything whose meaning could differ between Airlock and the upstream (an encoded `/`, `\` or
//! NUL, a double-encoded byte, a dot segment above the root, a raw byte outside RFC 3986's path
//! characters) is refused rather than guessed at; the caller classifies it destructive.

use std::fmt;

/// Why a path cannot be classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// The request target is not an origin-form path (`/...`).
    NotOriginForm,
    /// A raw character that is not allowed in a path.
    BadChar(char),
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// An escape for a byte that would change the path's structure on some upstream.
    DangerousEscape(u8),
    /// `%25` followed by an escape: an upstream that decodes twice would see something else.
    DoubleEncoding,
    /// `..` above the root.
    AboveRoot,
    /// Escapes that do not decode to UTF-8, such as the overlong `%C0%AE` (`.`).
    BadUtf8,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::NotOriginForm => {
                f.write_str("request target is not a path starting with `/`")
            }
            PathError::BadChar(c) => write!(
                f,
                "character `{}` is not allowed in a path",
                c.escape_default()
            ),
            PathError::BadEscape => f.write_str("malformed percent-escape"),
            PathError::DangerousEscape(b) => write!(
                f,
                "encoded byte `%{b:02X}` could change the path on the upstream"
            ),
            PathError::DoubleEncoding => f.write_str("double percent-encoding"),
            PathError::AboveRoot => f.write_str("`..` climbs above the root"),
            PathError::BadUtf8 => f.write_str(
                "escaped bytes are not UTF-8 (an overlong form could decode to `.` or `/` upstream)",
            ),
        }
    }
}

/// Splits a request target into its path and its query (without the `?`).
pub fn split_query(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

// `;` is deliberately absent: servlet containers strip `;params` from segments, so `/admin;x`
// would reach `/admin` upstream while matching no `/admin` rule here.
fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
        )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalises one segment: decodes unreserved escapes, upper-cases the hex of the others,
/// lower-cases when the upstream ignores case.
fn normalize_segment(seg: &str, lowercase: bool) -> Result<String, PathError> {
    let bytes = seg.as_bytes();
    let mut out = String::with_capacity(seg.len());
    let mut high = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (hi, lo) = match (
                bytes.get(i + 1).and_then(|&h| hex_val(h)),
                bytes.get(i + 2).and_then(|&l| hex_val(l)),
            ) {
                (Some(h), Some(l)) => (h, l),
                _ => return Err(PathError::BadEscape),
            };
            let v = (hi << 4) | lo;
            if matches!(v, b'/' | b'\\' | 0) {
                return Err(PathError::DangerousEscape(v));
            }
            high |= v >= 0x80;
            if is_unreserved(v) {
                out.push(char::from(if lowercase {
                    v.to_ascii_lowercase()
                } else {
                    v
                }));
            } else {
                out.push('%');
                out.push_str(&format!("{v:02X}"));
            }
            i += 3;
        } else if is_path_char(b) {
            out.push(char::from(if lowercase {
                b.to_ascii_lowercase()
            } else {
                b
            }));
            i += 1;
        } else {
            let c = seg[i..].chars().next().unwrap_or('\u{fffd}');
            return Err(PathError::BadChar(c));
        }
    }
    // Checked on the output, not the input: `%25%41%42` becomes `%25AB`, which a second
    // decoding pass on the upstream would turn into a different byte.
    let ob = out.as_bytes();
    for (j, w) in ob.windows(3).enumerate() {
        if w == b"%25"
            && ob.get(j + 3).and_then(|&h| hex_val(h)).is_some()
            && ob.get(j + 4).and_then(|&l| hex_val(l)).is_some()
        {
            return Err(PathError::DoubleEncoding);
        }
    }
    // Servers that decode leniently read overlong forms (`%C0%AE`) as ASCII, so `..` or `/`
    // could appear upstream that never appeared here. Only checked when a byte above ASCII was
    // escaped, which plain paths never do.
    if high && std::str::from_utf8(&decode_bytes(&out)).is_err() {
        return Err(PathError::BadUtf8);
    }
    Ok(out)
}

/// Normalises the path part of a request target (no query): decoding, dot segments,
/// doubled and trailing slashes, optional lower-casing. Idempotent.
pub fn normalize_path(path: &str, lowercase: bool) -> Result<String, PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotOriginForm);
    };
    let mut segments: Vec<String> = Vec::new();
    for raw in rest.split('/') {
        let seg = normalize_segment(raw, lowercase)?;
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            _ => segments.push(seg),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Readings an upstream might give a path Airlock refused: escapes decoded once and twice
/// (an encoded `/` or `\\` becoming a separator), `\\` as `/`, `;params` stripped, NUL
/// ending the path, dot segments clamped at the root. Used only to make sure a refused path is
/// never classified lower than what it could reach.
pub fn lenient_readings(path: &str, lowercase: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = path.as_bytes().to_vec();
    for _ in 0..3 {
        let text = String::from_utf8_lossy(&cur).into_owned();
        let seps = text.replace('\\', "/");
        let cut = seps.split('\0').next().unwrap_or("");
        let segs: Vec<String> = cut
            .split('/')
            .map(|s| s.split(';').next().unwrap_or("").to_string())
            .collect();
        let mut stack: Vec<String> = Vec::new();
        for seg in segs {
            let seg = if lowercase { seg.to_lowercase() } else { seg };
            match seg.as_str() {
                "" | "." => {}
                ".." => {
                    stack.pop();
                }
                _ => stack.push(seg),
            }
        }
        let reading = format!("/{}", stack.join("/"));
        let stem = format_reading(&reading);
        for r in std::iter::once(reading).chain(stem) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        let next = fold_overlong(&decode_lenient(&text));
        if next == cur {
            break;
        }
        cur = next;
    }
    out
}

/// The path with a format suffix cut from its last segment (`/admin.json` -> `/admin`), or
/// `None` when there is none. Rails routes `(.:format)` and Spring's suffix matching send
/// `/tokens.json` (or `/tokens.`) to the `/tokens` handler, so a suffix must not lower a class.
pub fn format_reading(normalized: &str) -> Option<String> {
    let (dir, last) = normalized.rsplit_once('/')?;
    let (stem, _) = last.split_once('.')?;
    // `.env` or `..` are names, not a suffix.
    if stem.is_empty() {
        return None;
    }
    Some(format!("{dir}/{stem}"))
}

/// Decodes overlong UTF-8 forms of ASCII (`C0 AE` for `.`) as a lenient decoder would.
fn fold_overlong(bytes: &[u8]) -> Vec<u8> {
    let cont = |i: usize| bytes.get(i).copied().filter(|b| b & 0xC0 == 0x80);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match (b, cont(i + 1), cont(i + 2), cont(i + 3)) {
            (0xC0 | 0xC1, Some(c1), _, _) => {
                out.push(((b & 0x1F) << 6) | (c1 & 0x3F));
                i += 2;
            }
            (0xE0, Some(c1), Some(c2), _) if c1 & 0x3F <= 1 => {
                out.push(((c1 & 0x3F) << 6) | (c2 & 0x3F));
                i += 3;
            }
            (0xF0, Some(0x80), Some(c2), Some(c3)) if c2 & 0x3F <= 1 => {
                out.push(((c2 & 0x3F) << 6) | (c3 & 0x3F));
                i += 4;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Decodes percent-escapes as a lenient server would, IIS's `%u002e` included.
fn decode_lenient(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("%u") {
        out.extend(decode_bytes(&rest[..i]));
        let c = rest
            .get(i + 2..i + 6)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match c {
            Some(c) => {
                out.extend(c.to_string().bytes());
                rest = &rest[i + 6..];
            }
            None => {
                out.extend(b"%u");
                rest = &rest[i + 2..];
            }
        }
    }
    out.extend(decode_bytes(rest));
    out
}

/// Decodes every percent-escape into bytes.
fn decode_bytes(seg: &str) -> Vec<u8> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&h| hex_val(h)),
                bytes.get(i + 2).and_then(|&l| hex_val(l)),
            ) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Decodes every percent-escape of an already normalised segment (for resource ids).
pub fn decode_segment(seg: &str) -> String {
    String::from_utf8_lossy(&decode_bytes(seg)).into_owned()
}

/// Decodes a form/query component: `+` is a space, escapes are bytes.
pub fn decode_component(s: &str) -> String {
    decode_segment(&s.replace('+', " "))
}

/// The values of every `key=value` pair named `key` in a query string or form body.
pub fn query_values(query: &str, key: &str) -> Vec<String> {
    query_params(query, &[key]).pop().unwrap_or_default()
}

/// The values of every pair named by one of `keys`, per key, in one pass over the string.
///
/// Rack before 3.0 (and Go before 1.17, Python's `parse_qs` before 3.9.2) also split on `;`,
/// so `?query=A&x=1;query=B` holds `B` for them and not for others: both splits count.
pub fn query_params(query: &str, keys: &[&str]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new(); keys.len()];
    let mut take = |pair: &str| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // Most keys hold no escape: compare them without decoding.
        let decoded;
        let k = if k.contains(['%', '+']) {
            decoded = decode_component(k);
            decoded.as_str()
        } else {
            k
        };
        if let Some(values) = keys
            .iter()
            .position(|want| *want == k)
            .and_then(|i| out.get_mut(i))
        {
            values.push(decode_component(v));
        }
    };
    for pair in query.split('&') {
        take(pair);
    }
    // Only a pair holding `;` reads differently when split on it; the others would only be
    // found again. No deduplication: comparing each value with the earlier ones is quadratic
    // in a hostile body, and callers bound how many readings they act on.
    if query.contains(';') {
        for pair in query.split('&').filter(|p| p.contains(';')) {
            for part in pair.split(';') {
                take(part);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize_path(p, false)
    }

    #[test]
    fn plain_paths_stay() {
        assert_eq!(n("/").unwrap(), "/");
        assert_eq!(n("/v1/volumes/abc").unwrap(), "/v1/volumes/abc");
    }

    #[test]
    fn slashes_collapse_and_trailing_slash_goes() {
        assert_eq!(n("//admin").unwrap(), "/admin");
        assert_eq!(n("/v1//volumes///").unwrap(), "/v1/volumes");
    }

    #[test]
    fn dot_segments_resolve() {
        assert_eq!(n("/v1/volumes/../admin").unwrap(), "/v1/admin");
        assert_eq!(n("/v1/./volumes/.").unwrap(), "/v1/volumes");
        assert_eq!(n("/v1/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(n("/v1/.%2E/admin").unwrap(), "/admin");
        assert_eq!(n("/.."), Err(PathError::AboveRoot));
        assert_eq!(n("/a/../../b"), Err(PathError::AboveRoot));
    }

    #[test]
    fn unreserved_escapes_decode_others_stay_uppercase() {
        assert_eq!(n("/v1/%76olumes").unwrap(), "/v1/volumes");
        assert_eq!(n("/a%3fb").unwrap(), "/a%3Fb");
        assert_eq!(n("/a%20b").unwrap(), "/a%20b");
    }

    #[test]
    fn dangerous_escapes_refused() {
        assert_eq!(
            n("/v1/VOLUMES/..%2fadmin"),
            Err(PathError::DangerousEscape(b'/'))
        );
        assert_eq!(n("/a%5c..%5cadmin"), Err(PathError::DangerousEscape(b'\\')));
        assert_eq!(n("/a%00"), Err(PathError::DangerousEscape(0)));
        assert_eq!(n("/v1/%252e%252e/admin"), Err(PathError::DoubleEncoding));
        assert_eq!(n("/a%25%41%42"), Err(PathError::DoubleEncoding));
        assert_eq!(n("/a%25zz").unwrap(), "/a%25zz");
        assert_eq!(n("/a%2"), Err(PathError::BadEscape));
        assert_eq!(n("/a%zz"), Err(PathError::BadEscape));
    }

    #[test]
    fn raw_oddities_refused() {
        assert_eq!(n("admin"), Err(PathError::NotOriginForm));
        assert_eq!(n("*"), Err(PathError::NotOriginForm));
        assert_eq!(n("/a\\b"), Err(PathError::BadChar('\\')));
        assert_eq!(n("/admin;x/users"), Err(PathError::BadChar(';')));
        assert_eq!(n("/a b"), Err(PathError::BadChar(' ')));
        assert_eq!(n("/é"), Err(PathError::BadChar('é')));
    }

    #[test]
    fn lowercase_when_case_insensitive() {
        assert_eq!(
            normalize_path("/V1/Volumes/%41b", true).unwrap(),
            "/v1/volumes/ab"
        );
        assert_eq!(normalize_path("/x%3f", true).unwrap(), "/x%3F");
    }

    #[test]
    fn lenient_readings_see_through_tricks() {
        let r = lenient_readings("/v1/VOLUMES/..%2fadmin", false);
        assert!(
            r.contains(&"/v1/admin".to_string()) || r.contains(&"/v1/VOLUMES/admin".to_string()),
            "{r:?}"
        );
        assert!(lenient_readings("/x/%252e%252e/admin", false).contains(&"/admin".to_string()));
        assert!(lenient_readings("/admin;x/users", false).contains(&"/admin/users".to_string()));
        assert!(lenient_readings("/a%5c..%5cadmin", false).contains(&"/admin".to_string()));
    }

    #[test]
    fn query_values_decode() {
        assert_eq!(
            query_values("a=1&_method=DELETE&b", "_method"),
            vec!["DELETE"]
        );
        assert_eq!(query_values("%5Fmethod=put", "_method"), vec!["put"]);
        assert_eq!(query_values("q=a+b%21", "q"), vec!["a b!"]);
    }
}
