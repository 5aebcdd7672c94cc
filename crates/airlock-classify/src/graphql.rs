//! GraphQL classification: every top-level field of the executed operation is one operation.
//!
//! Parser choice: `apollo-parser`. It is the only one of the candidates with both a recursion
//! limit and a token limit built in, so a hostile document cannot overflow the stack or make
//! the gateway chew on megabytes of tokens; it never panics on bad input and reports errors
//! instead (`graphql-parser` recurses without a limit; `async-graphql-parser` has no token cap).

use crate::{path, Acc, Operation};
use airlock_core::OpClass;
use apollo_parser::cst;
use apollo_parser::Parser;
use serde_json::{Map, Value as Json};
use std::borrow::Cow;
use std::collections::HashMap;

/// Meta fields answered by the GraphQL server itself; they get the `introspection` class.
pub(crate) const INTROSPECTION_FIELDS: [&str; 3] = ["__schema", "__type", "__typename"];

/// What a configured field classifies as.
#[derive(Debug, Clone)]
pub(crate) struct FieldRule {
    pub(crate) class: OpClass,
    pub(crate) resource_kind: String,
    /// Argument name then input-object field names; empty when no resource is named.
    pub(crate) resource_arg: Vec<String>,
}

/// Bounds on the work one request may cause; beyond them the request is destructive.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Parser recursion limit and fragment-expansion depth.
    pub(crate) max_depth: usize,
    /// Tokens per document.
    pub(crate) max_tokens: usize,
    /// Requests in one JSON batch.
    pub(crate) max_batch: usize,
    /// Top-level fields (after fragment expansion) across the whole HTTP request.
    pub(crate) max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_tokens: 20_000,
            max_batch: 32,
            max_fields: 256,
        }
    }
}

/// The compiled `[graphql]` section.
#[derive(Debug, Clone)]
pub(crate) struct GraphqlRules {
    /// Normalised endpoint paths.
    pub(crate) paths: Vec<String>,
    pub(crate) query_default: OpClass,
    pub(crate) mutation_default: OpClass,
    pub(crate) introspection: OpClass,
    pub(crate) fields: HashMap<String, FieldRule>,
    pub(crate) limits: Limits,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Query,
    Mutation,
    Subscription,
}

/// One GraphQL request of a JSON body (or of a batch). Every value of a repeated member is
/// kept: servers disagree on whether the first or the last `query` wins, so each reading is
/// classified and the most dangerous counts.
#[derive(Default)]
struct GqlRequest {
    query: Vec<Json>,
    variables: Vec<Json>,
    operation_name: Vec<Json>,
    /// Members that name a document stored on the server (persisted queries), with their
    /// values: a server that finds the stored document runs it, whatever `query` says.
    stored: Vec<(String, Json)>,
    /// Several `variables` members in one JSON object: Go's encoding/json merges them into
    /// one map, a reading none of them is, so no resource is read from variables.
    variables_merged: bool,
}

/// Top-level members through which servers look up a stored document: Relay (`id`, `doc_id`),
/// GraphQL Yoga and the GraphQL-over-HTTP draft (`documentId`), Mercurius (`persisted`, where
/// `query` holds the hash), graphql-ruby's operation store (`operationId`), and others
/// (`queryId`, `docId`).
const STORED_KEYS: [&str; 7] = [
    "id",
    "documentId",
    "doc_id",
    "docId",
    "queryId",
    "persisted",
    "operationId",
];

/// The members of a GraphQL request read from URL or form parameters.
const PARAM_KEYS: [&str; 4 + STORED_KEYS.len()] = {
    let mut out = [""; 4 + STORED_KEYS.len()];
    (out[0], out[1], out[2], out[3]) = ("query", "operationName", "extensions", "variables");
    let mut i = 0;
    while i < STORED_KEYS.len() {
        out[4 + i] = STORED_KEYS[i];
        i += 1;
    }
    out
};

/// A member name as Go's encoding/json (gqlgen, graph-gophers) matches it against a struct
/// field: without case, under Unicode simple folding, so `VARIABLES` and `variableſ` (long s)
/// are `variables` there. Upper- then lower-casing joins those orbits (`ſ`, `S`, `s`; the
/// Kelvin sign and `k`); it joins a few more (`ß`, `ss`), which only errs towards ambiguity.
fn fold_key(key: &str) -> Cow<'_, str> {
    if key.is_ascii() {
        if key.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(key.to_ascii_lowercase())
        } else {
            Cow::Borrowed(key)
        }
    } else {
        Cow::Owned(
            key.chars()
                .flat_map(char::to_uppercase)
                .flat_map(char::to_lowercase)
                .collect(),
        )
    }
}

/// Whether a member name is the (ASCII) `name` as Go matches it; most names are ASCII and
/// compare without being folded into a new string.
fn same_member(key: &str, name: &str) -> bool {
    if key.is_ascii() {
        key.eq_ignore_ascii_case(name)
    } else {
        fold_key(key).eq_ignore_ascii_case(name)
    }
}

impl GqlRequest {
    /// Apollo's automatic persisted queries; graphql-java runs a cached document found by this
    /// hash without checking it against `query`.
    fn add_extensions(&mut self, e: Extensions) {
        let found = match e {
            Extensions::Object(found) => found,
            Extensions::Text(t) if t.is_empty() => return,
            // Servers parse the JSON text a URL carries, and some parse it in a body too.
            Extensions::Text(t) => match serde_json::from_str::<Extensions>(&t) {
                Ok(Extensions::Object(found)) => found,
                Ok(_) => return,
                // A server may read it where serde_json could not: it could name a document.
                Err(_) => return self.stored.push(("extensions".into(), Json::String(t))),
            },
            Extensions::Other(_) => return,
        };
        for p in found.0 {
            self.stored.push(("extensions.persistedQuery".into(), p));
        }
    }

    fn merge(&mut self, other: GqlRequest) {
        self.query.extend(other.query);
        self.variables.extend(other.variables);
        self.operation_name.extend(other.operation_name);
        self.stored.extend(other.stored);
        self.variables_merged |= other.variables_merged;
    }
}

/// An `extensions` member: an object, a JSON text of one (as in a URL), or anything else,
/// which names no stored document.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Extensions {
    Object(PersistedQueries),
    Text(String),
    Other(serde::de::IgnoredAny),
}

/// Every non-null `persistedQuery` of an `extensions` object. A repeated key is kept every
/// way rather than made ambiguous: an ambiguous reference is still a stored document.
struct PersistedQueries(Vec<Json>);

impl<'de> serde::Deserialize<'de> for PersistedQueries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PersistedQueries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a GraphQL extensions object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<PersistedQueries, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if same_member(&k, "persistedQuery") {
                        let Unambiguous(v) = map.next_value()?;
                        if !v.is_null() {
                            out.push(v);
                        }
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(PersistedQueries(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> serde::Deserialize<'de> for GqlRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = GqlRequest;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a GraphQL request object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<GqlRequest, A::Error> {
                let mut r = GqlRequest::default();
                let mut variables = 0;
                while let Some(k) = map.next_key::<String>()? {
                    // Members are matched without case, as Go servers do; a spelling that
                    // differs from the exact one is just one more reading.
                    let is = |name: &str| same_member(&k, name);
                    if is("query") {
                        r.query.push(map.next_value::<Unambiguous>()?.0);
                    } else if is("operationName") {
                        r.operation_name.push(map.next_value::<Unambiguous>()?.0);
                    } else if is("variables") {
                        variables += 1;
                        r.variables.push(map.next_value::<Unambiguous>()?.0);
                    } else if is("extensions") {
                        r.add_extensions(map.next_value()?);
                    } else if STORED_KEYS.iter().any(|s| is(s)) {
                        let v = map.next_value::<Unambiguous>()?.0;
                        if !matches!(v, Json::Null | Json::Bool(false)) {
                            r.stored.push((k, v));
                        }
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                r.variables_merged = variables > 1;
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON value in which a key repeated inside an object is `null`. Parsers disagree on which
/// copy wins (serde_json and JavaScript take the last, streaming parsers such as simdjson,
/// gjson and jsonparser the first), so `{"id": "vol-prod", "id": "vol-stg"}` names no
/// resource here rather than the staging one while the upstream deletes production. Keys that
/// differ only in case (`id`, `ID`) are all `null` too: Go decodes an input struct ignoring case.
struct Unambiguous(Json);

impl<'de> serde::Deserialize<'de> for Unambiguous {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Unambiguous;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Json::Bool(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Json::from(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Json::from(v)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Json::from(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Json::String(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Json::String(v)))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Json::Null))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Json::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Unambiguous, A::Error> {
                let mut out = Vec::new();
                while let Some(Unambiguous(v)) = seq.next_element()? {
                    out.push(v);
                }
                Ok(Unambiguous(Json::Array(out)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Unambiguous, A::Error> {
                let mut out = Map::new();
                // Only a key with a capital or a non-ASCII character can meet another under
                // folding, so most objects skip the check.
                let mut foldable = false;
                while let Some(k) = map.next_key::<String>()? {
                    let Unambiguous(v) = map.next_value()?;
                    foldable |= k.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii());
                    match out.get_mut(&k) {
                        Some(old) => *old = Json::Null,
                        None => {
                            out.insert(k, v);
                        }
                    }
                }
                if foldable && out.len() > 1 {
                    let mut seen: HashMap<Cow<'_, str>, usize> = HashMap::new();
                    for k in out.keys() {
                        *seen.entry(fold_key(k)).or_default() += 1;
                    }
                    let clashing: Vec<String> = out
                        .keys()
                        .filter(|k| seen.get(&fold_key(k)).is_some_and(|n| *n > 1))
                        .cloned()
                        .collect();
                    for k in clashing {
                        out.insert(k, Json::Null);
                    }
                }
                Ok(Unambiguous(Json::Object(out)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Readings of one request beyond which ambiguity is not worth resolving.
const MAX_READINGS: usize = 8;

/// Lower-case hex SHA-256, as persisted-query hashes are written.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    let mut out = String::with_capacity(64);
    for b in sha2::Sha256::digest(text.as_bytes()) {
        for nibble in [b >> 4, b & 0xF] {
            out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    out
}

/// Whether a stored-document reference is provably the document `query` sends: its value is
/// the SHA-256 of that text (plain or `sha256:`-prefixed), so the stored copy is that text.
fn names_this_document(reference: &Json, query: &Json, hash: &str) -> bool {
    let value = match reference {
        Json::Object(m) => m.get("sha256Hash"),
        other => Some(other),
    };
    let Some(Json::String(v)) = value else {
        return false;
    };
    let v = v.strip_prefix("sha256:").unwrap_or(v);
    query.is_string() && v.eq_ignore_ascii_case(hash)
}

/// Decodes JSON `\uXXXX` escapes, so that a scan sees `\u0061piTokenCreate` as the name.
fn json_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("\\u") {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 2..i + 6);
        match hex
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32)
        {
            Some(c) => {
                out.push(c);
                rest = &rest[i + 6..];
            }
            None => {
                out.push_str("\\u");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl GraphqlRules {
    /// Whether a normalised path is one of this upstream's GraphQL endpoints.
    pub(crate) fn is_endpoint(&self, normalized: &str) -> bool {
        self.paths.iter().any(|p| p == normalized)
    }

    /// The GraphQL request carried in URL or form parameters (`?query=&variables=&...`);
    /// a repeated parameter is kept every way, like a repeated JSON member. The error says
    /// why `variables` is not JSON.
    fn params_request(params: &str) -> (GqlRequest, Option<String>) {
        let mut r = GqlRequest::default();
        if params.is_empty() {
            return (r, None);
        }
        let mut found = path::query_params(params, &PARAM_KEYS).into_iter();
        let mut next = || found.next().unwrap_or_default();
        let (query, names, extensions, variables) = (next(), next(), next(), next());
        r.query = query.into_iter().map(Json::String).collect();
        r.operation_name = names
            .into_iter()
            .filter(|n| !n.is_empty())
            .map(Json::String)
            .collect();
        for key in STORED_KEYS {
            for v in next().into_iter().filter(|v| !v.is_empty() && v != "false") {
                r.stored.push((key.to_string(), Json::String(v)));
            }
        }
        for e in extensions {
            r.add_extensions(Extensions::Text(e));
        }
        let mut err = None;
        for v in variables.into_iter().filter(|v| !v.is_empty()) {
            match serde_json::from_str::<Unambiguous>(&v) {
                Ok(j) => r.variables.push(j.0),
                Err(e) => err = Some(format!("`variables` is not JSON: {e}")),
            }
        }
        (r, err)
    }

    /// Classifies a request read from parameters, or its failure.
    fn classify_params(&self, (r, err): (GqlRequest, Option<String>), acc: &mut Acc) {
        match err {
            None => self.classify_request(r, acc),
            Some(e) => {
                acc.fail(e);
                let texts: Vec<&str> = r.query.iter().filter_map(Json::as_str).collect();
                self.worst_case(&texts, acc);
            }
        }
    }

    /// Classifies a GraphQL request carried in the URL (`?query=&variables=&operationName=`).
    pub(crate) fn classify_url(&self, query_string: &str, acc: &mut Acc) {
        self.classify_params(Self::params_request(query_string), acc);
    }

    /// Classifies the URL's own GraphQL request beside a body, when it carries a `query`.
    pub(crate) fn classify_url_request(&self, query_string: &str, acc: &mut Acc) {
        let (r, err) = Self::params_request(query_string);
        if !r.query.is_empty() {
            self.classify_params((r, err), acc);
        }
    }

    /// Records a compressed body, which Airlock does not decode: it could hold any field, so
    /// every configured field above destructive counts.
    pub(crate) fn fail_compressed(&self, acc: &mut Acc) {
        acc.fail("the body is compressed (`Content-Encoding`); send it uncompressed to have it classified".into());
        for (name, rule) in self.dangerous_fields() {
            acc.ops.push(Operation {
                action: name.clone(),
                class: rule.class,
                resource_kind: rule.resource_kind.clone(),
                resource_id: None,
            });
            acc.notes.push(format!(
                "a compressed body could hold `{name}`: counted as {}",
                rule.class
            ));
        }
    }

    /// Classifies a GraphQL request body according to its content type. `url` is the query
    /// string: express-graphql and its kin take `query`, `variables` and `operationName` from
    /// the URL before the body, so for a single request each member is read from either.
    pub(crate) fn classify_body(
        &self,
        content_type: Option<&str>,
        body: &[u8],
        url: &str,
        acc: &mut Acc,
    ) {
        let mime = content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        // Servers that decode bodies through iconv-lite (Express) or .NET drop a UTF-8 byte
        // order mark and then execute the rest; without it the rest is exactly what runs.
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let with_url = |mut r: GqlRequest, err: Option<String>| {
            let (u, url_err) = Self::params_request(url);
            r.merge(u);
            (r, err.or(url_err))
        };
        match mime.as_str() {
            "application/graphql" => match std::str::from_utf8(body) {
                Ok(q) => {
                    let mut r = GqlRequest::default();
                    r.query.push(Json::String(q.to_string()));
                    self.classify_params(with_url(r, None), acc);
                }
                Err(_) => self.fail_body("GraphQL body is not UTF-8".into(), body, url, acc),
            },
            // express-graphql reads a form body like a query string.
            "application/x-www-form-urlencoded" => {
                let (r, err) = Self::params_request(&String::from_utf8_lossy(body));
                self.classify_params(with_url(r, err), acc);
                // async-graphql reads every body but multipart as JSON, whatever its type.
                let first = body.iter().find(|b| !b.is_ascii_whitespace());
                if first.is_some_and(|b| matches!(b, b'{' | b'[')) {
                    self.classify_json(body, url, acc);
                }
            }
            // A missing content type is tried as JSON: most servers default to it.
            "" | "application/json" => self.classify_json(body, url, acc),
            m if m.starts_with("application/") && m.ends_with("+json") => {
                self.classify_json(body, url, acc)
            }
            other => self.fail_body(
                format!("content type `{other}` cannot be classified as GraphQL"),
                body,
                url,
                acc,
            ),
        }
    }

    /// Records that a body could not be read, plus every privileged field it could still
    /// carry: a lenient server may parse it anyway (UTF-16 JSON, a multipart upload's
    /// `operations`, JSON sent as `text/plain`). The body is scanned as text, without NUL
    /// bytes (UTF-16 and UTF-32 of ASCII names), with JSON escapes and percent-escapes decoded.
    /// The URL's own request is classified too, since it was not merged with the body's.
    fn fail_body(&self, why: String, body: &[u8], url: &str, acc: &mut Acc) {
        acc.fail(why);
        let plain: Vec<u8> = body.iter().copied().filter(|&b| b != 0).collect();
        let plain = String::from_utf8_lossy(&plain).into_owned();
        let unescaped = json_unescape(&plain);
        let decoded = path::decode_component(&plain);
        let both = json_unescape(&decoded);
        self.worst_case(&[&plain, &unescaped, &decoded, &both], acc);
        self.classify_url_request(url, acc);
    }

    fn classify_json(&self, body: &[u8], url: &str, acc: &mut Acc) {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        match first {
            Some(b'[') => match serde_json::from_slice::<Vec<GqlRequest>>(body) {
                Ok(batch) if batch.is_empty() => {
                    self.fail_body("empty GraphQL batch".into(), body, url, acc)
                }
                Ok(batch) if batch.len() > self.limits.max_batch => {
                    acc.fail(format!(
                        "GraphQL batch of {} requests exceeds the limit of {}",
                        batch.len(),
                        self.limits.max_batch
                    ));
                    let texts: Vec<&str> = batch
                        .iter()
                        .flat_map(|r| r.query.iter().filter_map(Json::as_str))
                        .collect();
                    self.worst_case(&texts, acc);
                    self.classify_url_request(url, acc);
                }
                Ok(batch) => {
                    for r in batch {
                        self.classify_request(r, acc);
                    }
                    // Servers that batch ignore the URL on a POST; one that does not would
                    // run the URL's request instead.
                    self.classify_url_request(url, acc);
                }
                Err(e) => self.fail_body(
                    format!("GraphQL batch is not valid JSON: {e}"),
                    body,
                    url,
                    acc,
                ),
            },
            Some(b'{') => match serde_json::from_slice::<GqlRequest>(body) {
                Ok(mut r) => {
                    let (u, err) = Self::params_request(url);
                    r.merge(u);
                    self.classify_params((r, err), acc);
                }
                Err(e) => self.fail_body(
                    format!("GraphQL body is not valid JSON: {e}"),
                    body,
                    url,
                    acc,
                ),
            },
            _ => self.fail_body(
                "GraphQL body is neither a JSON object nor a JSON array".into(),
                body,
                url,
                acc,
            ),
        }
    }

    /// Classifies every reading of a request (one per combination of repeated members).
    fn classify_request(&self, r: GqlRequest, acc: &mut Acc) {
        if r.query.is_empty() {
            let why = match r.stored.first() {
                Some((k, _)) => format!(
                    "GraphQL request without a `query`: it names a stored document (`{k}`) Airlock cannot read"
                ),
                None => "GraphQL request without a `query`".into(),
            };
            // Only Apollo's protocol has the client resend the document when the server lacks
            // it; Relay-style stored ids (`id`, `doc_id`) are never sent as text.
            let automatic = !r.stored.is_empty()
                && r.stored
                    .iter()
                    .all(|(k, _)| k == "extensions.persistedQuery");
            return match automatic {
                true => acc.fail_persisted(why),
                false => acc.fail(why),
            };
        }
        let vars: Vec<Option<&Json>> = if r.variables.is_empty() {
            vec![None]
        } else {
            r.variables.iter().map(Some).collect()
        };
        let names: Vec<Option<&Json>> = if r.operation_name.is_empty() {
            vec![None]
        } else {
            r.operation_name.iter().map(Some).collect()
        };
        if r.variables_merged {
            acc.notes.push(
                "several `variables` members (in any case), which Go servers merge: no resource is read from variables".into(),
            );
        }
        let readings = r
            .query
            .len()
            .saturating_mul(vars.len())
            .saturating_mul(names.len());
        if readings > 1 {
            acc.notes.push(format!(
                "repeated members in a GraphQL request: {readings} readings classified, the most dangerous counts"
            ));
        }
        if readings > MAX_READINGS {
            acc.fail(format!(
                "{readings} readings of one GraphQL request exceed the limit of {MAX_READINGS}"
            ));
            let texts: Vec<&str> = r.query.iter().filter_map(Json::as_str).collect();
            self.worst_case(&texts, acc);
            return;
        }
        // After the readings limit: each reference is checked against each `query`.
        if !r.stored.is_empty() {
            let hashes: Vec<String> = r
                .query
                .iter()
                .map(|q| q.as_str().map(sha256_hex).unwrap_or_default())
                .collect();
            let unproven = r.stored.iter().find(|(_, v)| {
                !r.query
                    .iter()
                    .zip(&hashes)
                    .all(|(q, h)| names_this_document(v, q, h))
            });
            if let Some((k, _)) = unproven {
                acc.fail(format!(
                    "the request names a stored document (`{k}`) that is not provably its `query`; a server that prefers stored documents runs that one"
                ));
            }
        }
        for q in &r.query {
            for v in &vars {
                for n in &names {
                    self.classify_parts(q, *v, r.variables_merged, *n, acc);
                }
            }
        }
    }

    fn classify_parts(
        &self,
        query: &Json,
        variables: Option<&Json>,
        variables_merged: bool,
        name: Option<&Json>,
        acc: &mut Acc,
    ) {
        let Json::String(query) = query else {
            return acc.fail("GraphQL `query` is not a string".into());
        };
        // Some clients send variables as a JSON string; servers that accept that parse it.
        let parsed;
        let variables = match variables {
            None | Some(Json::Null) => None,
            Some(Json::Object(m)) => Some(m),
            Some(Json::String(s)) => match serde_json::from_str::<Unambiguous>(s) {
                Ok(Unambiguous(Json::Object(m))) => {
                    parsed = m;
                    Some(&parsed)
                }
                Ok(Unambiguous(Json::Null)) => None,
                _ => {
                    return self.fail_doc(
                        query,
                        "GraphQL `variables` is not a JSON object".into(),
                        acc,
                    )
                }
            },
            Some(_) => {
                return self.fail_doc(
                    query,
                    "GraphQL `variables` is not a JSON object".into(),
                    acc,
                )
            }
        };
        let name = match name {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.as_str()),
            Some(_) => {
                return self.fail_doc(query, "GraphQL `operationName` is not a string".into(), acc)
            }
        };
        self.classify_document(query, variables, variables_merged, name, acc);
    }

    /// Records a failure on a document, plus what the document might still do: an upstream
    /// with a laxer parser or higher limits could execute what Airlock could not classify.
    fn fail_doc(&self, text: &str, why: String, acc: &mut Acc) {
        acc.fail(why);
        self.worst_case(&[text], acc);
    }

    /// Adds every configured field more dangerous than `destructive` that one of the texts
    /// names. GraphQL names cannot be escaped inside a document, so a word scan
    /// over-approximates the fields it can execute.
    fn worst_case(&self, texts: &[&str], acc: &mut Acc) {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        for (name, rule) in self.dangerous_fields() {
            let found = texts.iter().any(|text| {
                let bytes = text.as_bytes();
                text.match_indices(name.as_str()).any(|(i, _)| {
                    let before = i.checked_sub(1).and_then(|j| bytes.get(j)).copied();
                    let after = bytes.get(i + name.len()).copied();
                    !before.is_some_and(word) && !after.is_some_and(word)
                })
            });
            if found {
                acc.ops.push(Operation {
                    action: name.clone(),
                    class: rule.class,
                    resource_kind: rule.resource_kind.clone(),
                    resource_id: None,
                });
                acc.notes.push(format!(
                    "the unclassifiable document names `{name}`: counted as {}",
                    rule.class
                ));
            }
        }
    }

    /// The configured fields more dangerous than `destructive`, by name.
    fn dangerous_fields(&self) -> Vec<(&String, &FieldRule)> {
        let mut names: Vec<(&String, &FieldRule)> = self
            .fields
            .iter()
            .filter(|(_, r)| r.class > OpClass::Destructive)
            .collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        names
    }

    /// Classifies one GraphQL document with its variables and chosen operation name.
    pub(crate) fn classify_document(
        &self,
        query: &str,
        variables: Option<&Map<String, Json>>,
        variables_merged: bool,
        op_name: Option<&str>,
        acc: &mut Acc,
    ) {
        let tree = Parser::new(query)
            .recursion_limit(self.limits.max_depth)
            .token_limit(self.limits.max_tokens)
            .parse();
        if let Some(e) = tree.errors().next() {
            let msg: String = e.message().chars().take(200).collect();
            return self.fail_doc(query, format!("cannot parse GraphQL: {msg}"), acc);
        }
        let doc = tree.document();
        let mut ops = Vec::new();
        let mut fragments: HashMap<String, cst::FragmentDefinition> = HashMap::new();
        for def in doc.definitions() {
            match def {
                cst::Definition::OperationDefinition(op) => ops.push(op),
                cst::Definition::FragmentDefinition(f) => {
                    let Some(n) = f.fragment_name().and_then(|n| n.name()) else {
                        return self.fail_doc(query, "fragment without a name".into(), acc);
                    };
                    let n = n.text().to_string();
                    if fragments.insert(n.clone(), f).is_some() {
                        return self.fail_doc(query, format!("fragment `{n}` defined twice"), acc);
                    }
                }
                other => {
                    return self.fail_doc(
                        query,
                        format!(
                            "document holds a `{}`, which is not executable",
                            other.kind()
                        ),
                        acc,
                    );
                }
            }
        }
        if ops.is_empty() {
            return self.fail_doc(query, "GraphQL document holds no operation".into(), acc);
        }
        let op_name_of = |op: &cst::OperationDefinition| op.name().map(|n| n.text().to_string());
        let selected: Vec<&cst::OperationDefinition> = match op_name {
            Some(want) => {
                let found: Vec<_> = ops
                    .iter()
                    .filter(|op| op_name_of(op).as_deref() == Some(want))
                    .collect();
                if found.is_empty() {
                    return self.fail_doc(
                        query,
                        format!("`operationName` `{want}` names no operation in the document"),
                        acc,
                    );
                }
                found
            }
            None => {
                if ops.len() > 1 {
                    acc.notes.push(format!(
                        "{} operations and no `operationName`: all classified, the most dangerous counts",
                        ops.len()
                    ));
                }
                ops.iter().collect()
            }
        };
        for op in selected {
            let kind = match op.operation_type() {
                None => OpKind::Query,
                Some(t) if t.mutation_token().is_some() => OpKind::Mutation,
                Some(t) if t.subscription_token().is_some() => OpKind::Subscription,
                Some(_) => OpKind::Query,
            };
            let defaults = default_values(op);
            let Some(sel) = op.selection_set() else {
                return self.fail_doc(query, "operation without a selection set".into(), acc);
            };
            let cx = OpCx {
                rules: self,
                kind,
                variables,
                variables_merged,
                defaults: &defaults,
                fragments: &fragments,
            };
            let mut stack = Vec::new();
            if let Err(e) = cx.walk(&sel, 0, &mut stack, acc) {
                return self.fail_doc(query, e, acc);
            }
        }
    }
}

/// Default values declared for an operation's variables (`$id: ID = "x"`).
/// A variable declared twice (invalid, but an upstream that skips validation may take either
/// copy) maps to `None`, so its default names no resource.
fn default_values(op: &cst::OperationDefinition) -> HashMap<String, Option<cst::Value>> {
    let mut out = HashMap::new();
    for d in op
        .variable_definitions()
        .iter()
        .flat_map(|v| v.variable_definitions())
    {
        let name = d
            .variable()
            .and_then(|v| v.name())
            .map(|n| n.text().to_string());
        let value = d.default_value().and_then(|v| v.value());
        if let Some(n) = name {
            match out.entry(n) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    e.insert(None);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(value);
                }
            }
        }
    }
    out
}

struct OpCx<'a> {
    rules: &'a GraphqlRules,
    kind: OpKind,
    variables: Option<&'a Map<String, Json>>,
    /// No resource is read from a variable (see `GqlRequest::variables_merged`).
    variables_merged: bool,
    defaults: &'a HashMap<String, Option<cst::Value>>,
    fragments: &'a HashMap<String, cst::FragmentDefinition>,
}

impl OpCx<'_> {
    /// Visits the top-level selections, expanding fragments; an `Err` makes the request
    /// unclassifiable.
    fn walk(
        &self,
        sel: &cst::SelectionSet,
        depth: usize,
        stack: &mut Vec<String>,
        acc: &mut Acc,
    ) -> Result<(), String> {
        if depth > self.rules.limits.max_depth {
            return Err(format!(
                "fragments nested deeper than {}",
                self.rules.limits.max_depth
            ));
        }
        for s in sel.selections() {
            match s {
                cst::Selection::Field(f) => {
                    if acc.fields >= self.rules.limits.max_fields {
                        return Err(format!(
                            "more than {} top-level GraphQL fields",
                            self.rules.limits.max_fields
                        ));
                    }
                    acc.fields += 1;
                    let op = self.field(&f)?;
                    acc.ops.push(op);
                }
                cst::Selection::InlineFragment(i) => {
                    let Some(inner) = i.selection_set() else {
                        return Err("inline fragment without a selection set".into());
                    };
                    self.walk(&inner, depth + 1, stack, acc)?;
                }
                cst::Selection::FragmentSpread(spread) => {
                    let Some(name) = spread.fragment_name().and_then(|n| n.name()) else {
                        return Err("fragment spread without a name".into());
                    };
                    let name = name.text().to_string();
                    if stack.contains(&name) {
                        return Err(format!("fragment `{name}` spreads itself"));
                    }
                    let Some(def) = self.fragments.get(&name) else {
                        return Err(format!("fragment `{name}` is not defined"));
                    };
                    let Some(inner) = def.selection_set() else {
                        return Err(format!("fragment `{name}` has no selection set"));
                    };
                    stack.push(name);
                    self.walk(&inner, depth + 1, stack, acc)?;
                    stack.pop();
                }
            }
        }
        Ok(())
    }

    fn field(&self, f: &cst::Field) -> Result<Operation, String> {
        // The alias is only a label for the response; the field name is what executes.
        let Some(name) = f.name() else {
            return Err("field without a name".into());
        };
        let name = name.text().to_string();
        // GraphQL forbids repeating an argument, but an upstream that skips validation might
        // take the last copy while we read the first: refuse to guess.
        let mut seen = std::collections::HashSet::new();
        for a in f.arguments().iter().flat_map(|a| a.arguments()) {
            if let Some(n) = a.name() {
                if !seen.insert(n.text().to_string()) {
                    return Err(format!(
                        "argument `{}` of `{name}` is given twice",
                        n.text()
                    ));
                }
            }
        }
        let r = self.rules;
        if INTROSPECTION_FIELDS.contains(&name.as_str()) {
            return Ok(Operation {
                action: name,
                class: r.introspection,
                resource_kind: String::new(),
                resource_id: None,
            });
        }
        // A `read` rule describes the Query field of that name; a mutation field that shares
        // it (`mutation { volume(id: "v") { delete } }`, a namespaced mutation) is unruled.
        let rule = r
            .fields
            .get(&name)
            .filter(|rule| !(self.kind == OpKind::Mutation && rule.class == OpClass::Read));
        let Some(rule) = rule else {
            let class = match self.kind {
                OpKind::Mutation => r.mutation_default,
                OpKind::Query | OpKind::Subscription => r.query_default,
            };
            return Ok(Operation {
                action: name,
                class,
                resource_kind: String::new(),
                resource_id: None,
            });
        };
        let resource_id = match rule.resource_arg.split_first() {
            None => None,
            Some((arg, rest)) => f
                .arguments()
                .iter()
                .flat_map(|a| a.arguments())
                .find(|a| a.name().is_some_and(|n| n.text() == arg.as_str()))
                .and_then(|a| a.value())
                .and_then(|v| self.resolve(&v, rest, 0)),
        };
        Ok(Operation {
            action: name,
            class: rule.class,
            resource_kind: rule.resource_kind.clone(),
            resource_id,
        })
    }

    /// The scalar at `rest` inside a literal or a variable, as text.
    fn resolve(&self, v: &cst::Value, rest: &[String], hops: usize) -> Option<String> {
        // A default value cannot name a variable, so one hop suffices; the bound is defensive.
        if hops > 2 {
            return None;
        }
        match v {
            cst::Value::Variable(_) if self.variables_merged => None,
            cst::Value::Variable(var) => {
                let name = var.name()?.text().to_string();
                match self.variables.and_then(|m| m.get(&name)) {
                    Some(j) => resolve_json(j, rest),
                    None => self.resolve(self.defaults.get(&name)?.as_ref()?, rest, hops + 1),
                }
            }
            cst::Value::ObjectValue(o) => {
                let (first, tail) = rest.split_first()?;
                let mut matching = o
                    .object_fields()
                    .filter(|f| f.name().is_some_and(|n| n.text() == first.as_str()));
                let field = matching.next()?;
                // A repeated input field is ambiguous: no resource id, so the resource counts
                // as unknown (the most protected environment).
                if matching.next().is_some() {
                    return None;
                }
                self.resolve(&field.value()?, tail, hops)
            }
            _ if !rest.is_empty() => None,
            cst::Value::StringValue(s) => Some(String::from(s)),
            cst::Value::IntValue(i) => Some(i.int_token()?.text().to_string()),
            cst::Value::FloatValue(x) => Some(x.float_token()?.text().to_string()),
            cst::Value::EnumValue(e) => Some(e.name()?.text().to_string()),
            cst::Value::BooleanValue(b) => Some(
                if b.true_token().is_some() {
                    "true"
                } else {
                    "false"
                }
                .into(),
            ),
            cst::Value::NullValue(_) | cst::Value::ListValue(_) => None,
        }
    }
}

fn resolve_json(j: &Json, rest: &[String]) -> Option<String> {
    match rest.split_first() {
        Some((first, tail)) => resolve_json(j.as_object()?.get(first)?, tail),
        None => match j {
            Json::String(s) => Some(s.clone()),
            // Only integers every JSON parser reads alike: JavaScript rounds beyond 2^53 and
            // turns `1e2` into the ID "100" where serde_json reads "100.0".
            Json::Number(n) => n
                .as_i64()
                .filter(|i| i.unsigned_abs() < 1 << 53)
                .map(|i| i.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        },
    }
}
