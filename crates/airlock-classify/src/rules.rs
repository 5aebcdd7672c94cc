//! The rule file: strict TOML, one file per upstream. Every mistake is refused with its line
//! and column, because a rule file that half-loads would silently classify requests wrongly.

use crate::graphql::{FieldRule, GraphqlRules, Limits, INTROSPECTION_FIELDS};
use crate::http_rules::{HttpRule, Pattern, Template};
use crate::{path, RuleError, RuleSet, UNCLASSIFIABLE, UNCLASSIFIED};
use airlock_core::OpClass;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// Largest `max_body` a file may ask for: the gateway holds the body in memory.
const MAX_BODY_CEILING: usize = 64 << 20;
const DEFAULT_MAX_BODY: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    case_insensitive_paths: bool,
    #[serde(default)]
    unmatched: Option<OpClass>,
    #[serde(default)]
    max_body: Option<ByteSize>,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
    #[serde(default)]
    graphql: Option<RawGraphql>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    method: Methods,
    path: Spanned<String>,
    action: Spanned<String>,
    class: OpClass,
    #[serde(default)]
    resource_kind: String,
    #[serde(default)]
    resource: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGraphql {
    path: Spanned<StrOrList>,
    #[serde(default)]
    query_default: Option<OpClass>,
    #[serde(default)]
    mutation_default: Option<OpClass>,
    #[serde(default)]
    introspection: Option<OpClass>,
    #[serde(default)]
    max_depth: Option<usize>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_batch: Option<usize>,
    #[serde(default)]
    max_fields: Option<usize>,
    #[serde(default)]
    fields: BTreeMap<Spanned<String>, RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    class: OpClass,
    #[serde(default)]
    resource_kind: String,
    #[serde(default)]
    resource_arg: Option<Spanned<String>>,
}

/// `"GET"`, `"*"` or `["GET", "HEAD"]`; upper-cased, `None` for any.
struct Methods(Option<Vec<String>>);

/// A string or a list of strings.
struct StrOrList(Vec<String>);

/// `1048576`, `"512KiB"`, `"1MiB"`, `"1MB"`.
struct ByteSize(usize);

struct StrListVisitor;

impl<'de> Visitor<'de> for StrListVisitor {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a list of strings")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(vec![v.to_string()])
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(s) = seq.next_element::<String>()? {
            out.push(s);
        }
        if out.is_empty() {
            return Err(de::Error::custom("expected at least one entry"));
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for StrOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrListVisitor).map(StrOrList)
    }
}

impl<'de> Deserialize<'de> for Methods {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = d.deserialize_any(StrListVisitor)?;
        if list.iter().any(|m| m == "*") {
            if list.len() > 1 {
                return Err(de::Error::custom(
                    "`*` already matches every method; list nothing else",
                ));
            }
            return Ok(Methods(None));
        }
        let mut out = Vec::new();
        for m in list {
            if m.is_empty()
                || !m
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
            {
                return Err(de::Error::custom(format!(
                    "bad method `{m}`, expected a method name like `GET`, or `*`"
                )));
            }
            out.push(m.to_ascii_uppercase());
        }
        Ok(Methods(Some(out)))
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte count like `1048576`, `\"512KiB\"` or `\"1MiB\"`")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::custom(format!("`{v}` is not a byte count")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::custom(format!("`{v}` is too large")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        let s = v.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let mult: usize = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => {
                return Err(E::custom(format!(
                    "bad size `{v}`, expected a number with an optional unit B, KiB, MiB, GiB, KB, MB, GB"
                )))
            }
        };
        num.parse::<usize>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .ok_or_else(|| E::custom(format!("bad size `{v}`")))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = d.deserialize_any(ByteSizeVisitor)?;
        if n == 0 || n > MAX_BODY_CEILING {
            return Err(de::Error::custom(format!(
                "`max_body` must be between 1 byte and {MAX_BODY_CEILING} bytes, got {n}"
            )));
        }
        Ok(ByteSize(n))
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

struct Ctx<'a> {
    text: &'a str,
    origin: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> RuleError {
        let (line, column) = line_col(self.text, span.start);
        RuleError::Invalid {
            path: self.origin.display().to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

fn valid_action(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 128
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

fn valid_graphql_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Parses and checks a rule file.
pub(crate) fn compile(text: &str, origin: &Path) -> Result<RuleSet, RuleError> {
    let cx = Ctx { text, origin };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.err(span, e.message().trim().to_string())
    })?;
    let ci = raw.case_insensitive_paths;
    let unmatched = raw.unmatched.unwrap_or(OpClass::Destructive);

    // One class per action name: the policy schema is generated from it, and an action that
    // meant two things would make a policy on it mean two things.
    let mut actions: HashMap<String, (OpClass, Range<usize>)> = HashMap::new();
    let mut declare = |name: &str, class: OpClass, span: Range<usize>| -> Result<(), RuleError> {
        match actions.get(name) {
            Some((c, _)) if *c != class => Err(cx.err(
                span,
                format!("action `{name}` is declared `{class}` here but `{c}` elsewhere; one action, one class"),
            )),
            Some(_) => Ok(()),
            None => {
                actions.insert(name.to_string(), (class, span));
                Ok(())
            }
        }
    };

    let mut rules = Vec::new();
    for r in raw.rules {
        let pattern = Pattern::parse(r.path.get_ref(), ci).map_err(|m| cx.err(r.path.span(), m))?;
        let action = r.action.get_ref();
        if !valid_action(action) {
            return Err(cx.err(
                r.action.span(),
                format!("bad action name `{action}`, expected letters, digits, `_`, `-`, `.`, `:`"),
            ));
        }
        if action == UNCLASSIFIED || action == UNCLASSIFIABLE {
            return Err(cx.err(
                r.action.span(),
                format!("action name `{action}` is reserved"),
            ));
        }
        declare(action, r.class, r.action.span())?;
        let resource = match &r.resource {
            Some(t) => Some(
                Template::parse(t.get_ref(), &pattern.captures())
                    .map_err(|m| cx.err(t.span(), m))?,
            ),
            None => None,
        };
        rules.push(HttpRule {
            methods: r.method.0,
            pattern,
            action: action.clone(),
            class: r.class,
            resource_kind: r.resource_kind,
            resource,
        });
    }

    let graphql = match raw.graphql {
        None => None,
        Some(g) => {
            let mut paths = Vec::new();
            for p in &g.path.get_ref().0 {
                let norm = path::normalize_path(p, ci)
                    .map_err(|e| cx.err(g.path.span(), format!("graphql path `{p}`: {e}")))?;
                paths.push(norm);
            }
            let introspection = g.introspection.unwrap_or(OpClass::Destructive);
            for f in INTROSPECTION_FIELDS {
                declare(f, introspection, g.path.span())?;
            }
            let mut fields = HashMap::new();
            for (name, f) in g.fields {
                let n = name.get_ref();
                if !valid_graphql_name(n) || n.starts_with("__") {
                    return Err(cx.err(name.span(), format!("`{n}` is not a GraphQL field name")));
                }
                declare(n, f.class, name.span())?;
                let resource_arg = match &f.resource_arg {
                    None => Vec::new(),
                    Some(a) => {
                        let parts: Vec<String> =
                            a.get_ref().split('.').map(str::to_string).collect();
                        if parts.iter().any(|p| !valid_graphql_name(p)) {
                            return Err(cx.err(
                                a.span(),
                                format!("bad `resource_arg` `{}`, expected an argument name or a dotted path like `input.id`", a.get_ref()),
                            ));
                        }
                        parts
                    }
                };
                fields.insert(
                    n.clone(),
                    FieldRule {
                        class: f.class,
                        resource_kind: f.resource_kind,
                        resource_arg,
                    },
                );
            }
            let d = Limits::default();
            let limits = Limits {
                max_depth: g.max_depth.unwrap_or(d.max_depth),
                max_tokens: g.max_tokens.unwrap_or(d.max_tokens),
                max_batch: g.max_batch.unwrap_or(d.max_batch),
                max_fields: g.max_fields.unwrap_or(d.max_fields),
            };
            Some(GraphqlRules {
                paths,
                query_default: g.query_default.unwrap_or(OpClass::Destructive),
                mutation_default: g.mutation_default.unwrap_or(OpClass::Destructive),
                introspection,
                fields,
                limits,
            })
        }
    };
    let mut action_list: Vec<(String, OpClass)> =
        actions.into_iter().map(|(k, (c, _))| (k, c)).collect();
    action_list.push((UNCLASSIFIED.to_string(), unmatched));
    action_list.push((UNCLASSIFIABLE.to_string(), OpClass::Destructive));
    action_list.sort();

    Ok(RuleSet {
        case_insensitive: ci,
        unmatched,
        max_body: raw.max_body.map_or(DEFAULT_MAX_BODY, |b| b.0),
        rules,
        graphql,
        actions: action_list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(t: &str) -> Result<RuleSet, RuleError> {
        compile(t, Path::new("t.toml"))
    }

    fn invalid(t: &str) -> (usize, usize, String) {
        match load(t) {
            Err(RuleError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_is_all_destructive() {
        let r = load("").unwrap();
        assert_eq!(r.unmatched, OpClass::Destructive);
        assert_eq!(r.max_body, 1 << 20);
    }

    #[test]
    fn unknown_keys_refused_with_place() {
        let (l, c, m) = invalid("unmatched = \"read\"\nbogus = 1\n");
        assert_eq!((l, c), (2, 1), "{m}");
        assert!(m.contains("bogus"), "{m}");
        let (l, _, m) = invalid("[[rule]]\nmethod = \"GET\"\npath = \"/\"\naction = \"a\"\nclass = \"read\"\nklass = \"x\"\n");
        assert_eq!(l, 6, "{m}");
    }

    #[test]
    fn bad_values_refused_with_place() {
        let (l, c, m) = invalid("unmatched = \"harmless\"\n");
        assert_eq!((l, c), (1, 13), "{m}");
        let (l, _, m) = invalid("max_body = \"1 parsec\"\n");
        assert_eq!(l, 1, "{m}");
        assert!(m.contains("1 parsec"), "{m}");
        let (l, _, m) = invalid(
            "[[rule]]\nmethod = \"GE T\"\npath = \"/\"\naction = \"a\"\nclass = \"read\"\n",
        );
        assert_eq!(l, 2, "{m}");
        let (l, c, m) = invalid(
            "[[rule]]\nmethod = \"GET\"\npath = \"/a/{*r}/b\"\naction = \"a\"\nclass = \"read\"\n",
        );
        assert_eq!((l, c), (3, 8), "{m}");
        let (l, _, m) = invalid("[[rule]]\nmethod = \"GET\"\npath = \"/a/{id}\"\naction = \"a\"\nclass = \"read\"\nresource = \"{nope}\"\n");
        assert_eq!(l, 6, "{m}");
        assert!(m.contains("nope"), "{m}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(load("max_body = \"512KiB\"").unwrap().max_body, 512 << 10);
        assert_eq!(load("max_body = 1000").unwrap().max_body, 1000);
        assert!(load("max_body = 0").is_err());
        assert!(load("max_body = \"1GiB\"").is_err());
    }

    #[test]
    fn conflicting_action_classes_refused() {
        let t = "[[rule]]\nmethod = \"GET\"\npath = \"/a\"\naction = \"x\"\nclass = \"read\"\n\
                 [[rule]]\nmethod = \"DELETE\"\npath = \"/a\"\naction = \"x\"\nclass = \"destructive\"\n";
        let (l, _, m) = invalid(t);
        assert_eq!(l, 9, "{m}");
        let (_, _, m) = invalid("[[rule]]\nmethod = \"GET\"\npath = \"/a\"\naction = \"unclassified\"\nclass = \"read\"\n");
        assert!(m.contains("reserved"), "{m}");
    }

    #[test]
    fn graphql_section_checked() {
        let (l, _, m) = invalid(
            "[graphql]\npath = \"/graphql\"\n[graphql.fields.\"bad-name\"]\nclass = \"read\"\n",
        );
        assert_eq!(l, 3, "{m}");
        let (l, _, m) =
            invalid("[graphql]\npath = \"/graphql\"\n[graphql.fields.x]\nclass = \"read\"\nresource_arg = \"a..b\"\n");
        assert_eq!(l, 5, "{m}");
        let (l, _, m) = invalid("[graphql]\npath = \"graphql\"\n");
        assert_eq!(l, 2, "{m}");
        let (l, _, m) = invalid("[graphql]\npath = \"/graphql\"\nquery_default = \"maybe\"\n");
        assert_eq!(l, 3, "{m}");
    }
}
