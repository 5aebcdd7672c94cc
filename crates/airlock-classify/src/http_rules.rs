//! REST rules: a method set and a path pattern with captures, matched against normalised paths.

use crate::path;
use airlock_core::OpClass;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// Must equal the (normalised) path segment.
    Lit(String),
    /// Any one segment; named when written `{name}`, anonymous when `*`.
    Any(Option<String>),
}

/// A compiled path pattern: `/v1/volumes/{id}`, `/users/*/roles`, `/admin/{*rest}`, `/admin/**`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    segs: Vec<Seg>,
    /// `Some` when the pattern ends with a tail capture, which matches zero or more segments
    /// (so `/admin/**` also covers `/admin` itself).
    tail: Option<Option<String>>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Pattern {
    /// Parses a pattern; literal segments are normalised like request paths so that a rule
    /// written `/V1/%76olumes` still means what a request for it would be normalised to.
    pub(crate) fn parse(src: &str, lowercase: bool) -> Result<Pattern, String> {
        let Some(rest) = src.strip_prefix('/') else {
            return Err(format!("path pattern `{src}` must start with `/`"));
        };
        let raw: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let mut segs = Vec::new();
        let mut tail = None;
        for (i, s) in raw.iter().enumerate() {
            let last = i + 1 == raw.len();
            let tail_name = if *s == "**" {
                Some(None)
            } else if let Some(n) = s.strip_prefix("{*").and_then(|n| n.strip_suffix('}')) {
                if !valid_name(n) {
                    return Err(format!("bad capture name in `{s}` in path pattern `{src}`"));
                }
                Some(Some(n.to_string()))
            } else {
                None
            };
            if let Some(t) = tail_name {
                if !last {
                    return Err(format!(
                        "tail capture `{s}` must be the last segment of `{src}`"
                    ));
                }
                tail = Some(t);
            } else if *s == "*" {
                segs.push(Seg::Any(None));
            } else if let Some(n) = s.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                if !valid_name(n) {
                    return Err(format!("bad capture name in `{s}` in path pattern `{src}`"));
                }
                segs.push(Seg::Any(Some(n.to_string())));
            } else {
                if s.contains(['{', '}', '*']) {
                    return Err(format!(
                        "segment `{s}` of `{src}`: a capture must be a whole segment (`{{name}}`, `{{*name}}`, `*`, `**`)"
                    ));
                }
                let norm = path::normalize_path(&format!("/{s}"), lowercase)
                    .map_err(|e| format!("segment `{s}` of `{src}`: {e}"))?;
                let lit = norm.trim_start_matches('/');
                if lit.is_empty() || lit.contains('/') || *s == "." || *s == ".." {
                    return Err(format!("segment `{s}` of `{src}` is not a plain segment"));
                }
                segs.push(Seg::Lit(lit.to_string()));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for n in segs
            .iter()
            .filter_map(|s| match s {
                Seg::Any(Some(n)) => Some(n),
                _ => None,
            })
            .chain(tail.iter().flatten())
        {
            if !seen.insert(n.clone()) {
                return Err(format!("capture `{n}` appears twice in `{src}`"));
            }
        }
        Ok(Pattern { segs, tail })
    }

    /// Names this pattern captures.
    pub(crate) fn captures(&self) -> Vec<&str> {
        self.segs
            .iter()
            .filter_map(|s| match s {
                Seg::Any(Some(n)) => Some(n.as_str()),
                _ => None,
            })
            .chain(self.tail.iter().flatten().map(String::as_str))
            .collect()
    }

    /// How specific the pattern is, to break ties between rules of the same class:
    /// more literal segments first, then a pattern without a tail.
    pub(crate) fn specificity(&self) -> (usize, bool) {
        let lits = self
            .segs
            .iter()
            .filter(|s| matches!(s, Seg::Lit(_)))
            .count();
        (lits, self.tail.is_none())
    }

    /// Matches a normalised path; returns the captures (percent-decoded) on success.
    #[cfg(test)]
    pub(crate) fn matches(&self, normalized: &str) -> Option<Vec<(String, String)>> {
        let parts = segments(normalized);
        self.fits(&parts).then(|| self.capture(&parts))
    }

    /// Whether the path's segments (see [`segments`]) match, without decoding any capture: most
    /// rules a request is tried against do not match, and the ones that do may not win.
    pub(crate) fn fits(&self, parts: &[&str]) -> bool {
        if parts.len() < self.segs.len() || (self.tail.is_none() && parts.len() != self.segs.len())
        {
            return false;
        }
        self.segs.iter().zip(parts).all(|(seg, part)| match seg {
            Seg::Lit(l) => l == part,
            Seg::Any(_) => true,
        })
    }

    /// The captures (percent-decoded) of segments this pattern [`fits`](Pattern::fits).
    pub(crate) fn capture(&self, parts: &[&str]) -> Vec<(String, String)> {
        let mut caps = Vec::new();
        for (seg, part) in self.segs.iter().zip(parts) {
            if let Seg::Any(Some(n)) = seg {
                caps.push((n.clone(), path::decode_segment(part)));
            }
        }
        if let Some(Some(n)) = &self.tail {
            let rest = parts[self.segs.len()..]
                .iter()
                .map(|p| path::decode_segment(p))
                .collect::<Vec<_>>()
                .join("/");
            caps.push((n.clone(), rest));
        }
        caps
    }
}

/// A normalised path's non-empty segments, split once per request for every rule to try.
pub(crate) fn segments(normalized: &str) -> Vec<&str> {
    normalized.split('/').filter(|s| !s.is_empty()).collect()
}

/// A resource-id template such as `{id}` or `{project}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(Vec<TPart>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum TPart {
    Lit(String),
    Cap(String),
}

impl Template {
    /// Parses a template, checking each `{name}` against the captures the pattern has.
    pub(crate) fn parse(src: &str, captures: &[&str]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TPart::Lit(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("unclosed `{{` in resource template `{src}`"));
            };
            let name = &rest[open + 1..open + close];
            if !captures.contains(&name) {
                return Err(format!(
                    "resource template `{src}` uses `{{{name}}}`, which the path pattern does not capture"
                ));
            }
            parts.push(TPart::Cap(name.to_string()));
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("stray `}}` in resource template `{src}`"));
        }
        if !rest.is_empty() {
            parts.push(TPart::Lit(rest.to_string()));
        }
        Ok(Template(parts))
    }

    /// Fills the template from a match's captures; `None` when that leaves nothing.
    pub(crate) fn render(&self, caps: &[(String, String)]) -> Option<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                TPart::Lit(l) => out.push_str(l),
                TPart::Cap(n) => {
                    if let Some((_, v)) = caps.iter().find(|(k, _)| k == n) {
                        out.push_str(v);
                    }
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// One compiled REST rule.
#[derive(Debug, Clone)]
pub(crate) struct HttpRule {
    /// Upper-case methods; `None` matches any method.
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) pattern: Pattern,
    pub(crate) action: String,
    pub(crate) class: OpClass,
    pub(crate) resource_kind: String,
    pub(crate) resource: Option<Template>,
}

/// The result of matching a request against the rules.
pub(crate) struct RuleMatch<'r> {
    pub(crate) rule: &'r HttpRule,
    pub(crate) resource_id: Option<String>,
}

/// The most dangerous rule matching `method` and `normalized` (ties: the more specific pattern,
/// then the earlier rule), so that rule order can never lower a request's class.
pub(crate) fn best_match<'r>(
    rules: &'r [HttpRule],
    method: &str,
    normalized: &str,
) -> Option<RuleMatch<'r>> {
    let parts = segments(normalized);
    let mut best: Option<&'r HttpRule> = None;
    for rule in rules {
        if let Some(ms) = &rule.methods {
            if !ms.iter().any(|m| m == method) {
                continue;
            }
        }
        if !rule.pattern.fits(&parts) {
            continue;
        }
        if let Some(b) = best {
            let better = rule.class > b.class
                || (rule.class == b.class && rule.pattern.specificity() > b.pattern.specificity());
            if !better {
                continue;
            }
        }
        best = Some(rule);
    }
    // Captures are decoded for the winner only.
    best.map(|rule| RuleMatch {
        rule,
        resource_id: rule
            .resource
            .as_ref()
            .and_then(|t| t.render(&rule.pattern.capture(&parts))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_and_tails() {
        let p = Pattern::parse("/v1/volumes/{id}", false).unwrap();
        assert_eq!(
            p.matches("/v1/volumes/abc").unwrap(),
            vec![("id".into(), "abc".into())]
        );
        assert!(p.matches("/v1/volumes").is_none());
        assert!(p.matches("/v1/volumes/a/b").is_none());
        let t = Pattern::parse("/admin/{*rest}", false).unwrap();
        assert_eq!(
            t.matches("/admin").unwrap(),
            vec![("rest".into(), "".into())]
        );
        assert_eq!(
            t.matches("/admin/a/b").unwrap(),
            vec![("rest".into(), "a/b".into())]
        );
        let s = Pattern::parse("/users/*/roles", false).unwrap();
        assert!(s.matches("/users/7/roles").is_some());
        assert!(Pattern::parse("/admin/**", false)
            .unwrap()
            .matches("/admin/x")
            .is_some());
        assert!(Pattern::parse("/", false).unwrap().matches("/").is_some());
    }

    #[test]
    fn bad_patterns_refused() {
        assert!(Pattern::parse("v1", false).is_err());
        assert!(Pattern::parse("/a/{*r}/b", false).is_err());
        assert!(Pattern::parse("/a/x{id}", false).is_err());
        assert!(Pattern::parse("/a/{id}/{id}", false).is_err());
        assert!(Pattern::parse("/a/../b", false).is_err());
        assert!(Pattern::parse("/a/%2f", false).is_err());
    }

    #[test]
    fn literal_segments_normalised() {
        let p = Pattern::parse("/V1/%76olumes", true).unwrap();
        assert!(p.matches("/v1/volumes").is_some());
    }

    #[test]
    fn templates() {
        let t = Template::parse("vol-{id}", &["id"]).unwrap();
        assert_eq!(t.render(&[("id".into(), "7".into())]).unwrap(), "vol-7");
        assert_eq!(
            Template::parse("{id}", &["id"])
                .unwrap()
                .render(&[("id".into(), "".into())]),
            None
        );
        assert!(Template::parse("{nope}", &["id"]).is_err());
        assert!(Template::parse("{id", &["id"]).is_err());
    }
}
