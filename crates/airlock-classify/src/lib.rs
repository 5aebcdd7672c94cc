//! Classification: what a request would do, as operations with a danger class.
//!
//! Pure functions, no I/O. Anything that cannot be classified is `destructive` (fail closed).
//! The rule-file format and the normalisation rules are described in `docs/classification.md`.

mod graphql;
mod http_rules;
mod path;
mod rules;

use airlock_core::OpClass;
use std::path::Path;

/// The action of a request no rule matched; its class is the rule file's `unmatched`.
pub const UNCLASSIFIED: &str = "unclassified";
/// The action of a request that could not be understood at all (bad path, unparseable body,
/// exceeded limits); always destructive.
pub const UNCLASSIFIABLE: &str = "unclassifiable";

/// Headers through which clients ask frameworks to treat a request as another method.
/// Header names rather than strings: a lookup by string parses the name first, on every request.
const OVERRIDE_HEADERS: [http::HeaderName; 3] = [
    http::HeaderName::from_static("x-http-method-override"),
    http::HeaderName::from_static("x-http-method"),
    http::HeaderName::from_static("x-method-override"),
];

/// Method overrides read per request; beyond them the request is destructive.
const MAX_OVERRIDES: usize = 16;

/// One thing a request would do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operation {
    /// The rule's action name, e.g. `volumeDelete`, `listVolumes`; `unclassified` when no rule matched.
    pub action: String,
    /// How dangerous it is.
    pub class: OpClass,
    /// The kind of resource it touches, e.g. `volume`; empty when unknown.
    pub resource_kind: String,
    /// The resource id, when the request names one.
    pub resource_id: Option<String>,
}

/// The classification of a whole request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Classification {
    /// Every operation in the request (a GraphQL document or batch can hold several).
    pub operations: Vec<Operation>,
    /// The method the upstream will act on (after method-override headers).
    pub effective_method: String,
    /// The normalised path that was matched; the gateway forwards this path.
    pub normalized_path: String,
    /// Why things were classified as they were, for humans (e.g. "no rule matched: destructive").
    pub notes: Vec<String>,
    /// All the request does is name a stored document by its hash (Apollo's automatic persisted
    /// queries): the gateway can answer as a server that does not have it, and the client resends
    /// the document itself, which can be classified.
    pub persisted_query_miss: bool,
    /// The path could not be normalised (an encoded slash, a climb above the root, a bad
    /// escape), so `normalized_path` is the request target as sent.
    pub path_refused: bool,
}

impl Classification {
    /// The most dangerous class of any part; destructive when there are no parts.
    pub fn class(&self) -> OpClass {
        self.operations
            .iter()
            .map(|o| o.class)
            .max()
            .unwrap_or(OpClass::Destructive)
    }
}

/// One thing a rule set can make of a request, for reasoning about reach without a request
/// (blast radius): the action, its class, what kind of resource it touches and whether the
/// request names that resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ActionTarget {
    /// The action name as classification produces it.
    pub action: String,
    /// Its class.
    pub class: OpClass,
    /// The kind of resource it touches; empty when the rule does not say.
    pub resource_kind: String,
    /// Whether the request names a resource id (otherwise the upstream itself is the resource).
    pub names_resource: bool,
}

/// The action name standing for every GraphQL query field without a rule of its own.
pub const OTHER_QUERY_FIELD: &str = "(any other query field)";
/// The action name standing for every GraphQL mutation field without a rule of its own.
pub const OTHER_MUTATION_FIELD: &str = "(any other mutation field)";

/// A request as the HTTP door sees it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// The method from the request line.
    pub method: &'a str,
    /// The raw path and query from the request line (still percent-encoded).
    pub path_and_query: &'a str,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
    /// The body, when the gateway buffered it (only when [`RuleSet::needs_body`] said so).
    pub body: Option<&'a [u8]>,
}

/// Why a rule file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// Unreadable file.
    #[error("cannot read rule file `{path}`: {message}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// Invalid at a place.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// A compiled set of classification rules for one upstream.
#[derive(Debug, Clone)]
pub struct RuleSet {
    case_insensitive: bool,
    /// Class of requests no rule matches; destructive unless the file lowers it explicitly.
    unmatched: OpClass,
    max_body: usize,
    rules: Vec<http_rules::HttpRule>,
    graphql: Option<graphql::GraphqlRules>,
    /// Precomputed for [`RuleSet::actions`]; sorted, one entry per action.
    actions: Vec<(String, OpClass)>,
}

impl Default for RuleSet {
    /// The empty rule file: every request is destructive.
    fn default() -> Self {
        RuleSet {
            case_insensitive: false,
            unmatched: OpClass::Destructive,
            max_body: 1 << 20,
            rules: Vec::new(),
            graphql: None,
            actions: vec![
                (UNCLASSIFIABLE.to_string(), OpClass::Destructive),
                (UNCLASSIFIED.to_string(), OpClass::Destructive),
            ],
        }
    }
}

/// Operations and notes gathered while classifying one candidate method.
#[derive(Debug, Default)]
pub(crate) struct Acc {
    pub(crate) ops: Vec<Operation>,
    pub(crate) notes: Vec<String>,
    /// GraphQL top-level fields seen so far, against the per-request limit.
    pub(crate) fields: usize,
    /// Readings that only name an automatic persisted query by hash.
    pub(crate) persisted_misses: usize,
    /// Failures for any other reason.
    pub(crate) other_failures: usize,
}

impl Acc {
    /// Records that (part of) the request cannot be classified: one destructive operation.
    pub(crate) fn fail(&mut self, why: String) {
        self.other_failures += 1;
        self.ops.push(unclassifiable());
        self.notes.push(format!("{why}: treated as destructive"));
    }

    /// Records a reading that names an automatic persisted query by hash and sends no query.
    pub(crate) fn fail_persisted(&mut self, why: String) {
        self.persisted_misses += 1;
        self.ops.push(unclassifiable());
        self.notes.push(format!("{why}: treated as destructive"));
    }

    /// Whether the only thing wrong with the request is a persisted query sent by hash alone.
    fn persisted_query_miss(&self) -> bool {
        self.persisted_misses > 0
            && self.other_failures == 0
            && self.ops.iter().all(|o| o.action == UNCLASSIFIABLE)
    }

    fn class(&self) -> OpClass {
        self.ops
            .iter()
            .map(|o| o.class)
            .max()
            .unwrap_or(OpClass::Destructive)
    }
}

fn unclassifiable() -> Operation {
    Operation {
        action: UNCLASSIFIABLE.to_string(),
        class: OpClass::Destructive,
        resource_kind: String::new(),
        resource_id: None,
    }
}

/// Whether `name` is one of `headers` spelt with `_` for `-`: CGI, PHP, Rack and WSGI fold both
/// spellings into one variable (`HTTP_X_HTTP_METHOD_OVERRIDE`), so the upstream reads it as the
/// real one.
pub fn cgi_alias(name: &http::HeaderName, headers: &[http::HeaderName]) -> bool {
    let n = name.as_str();
    n.contains('_')
        && headers.iter().any(|h| {
            let h = h.as_str();
            h.len() == n.len()
                && h.bytes()
                    .zip(n.bytes())
                    .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
        })
}

fn override_alias(name: &http::HeaderName) -> bool {
    cgi_alias(name, &OVERRIDE_HEADERS)
}

fn valid_method(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 32
        && m.bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
}

fn content_type(headers: &http::HeaderMap) -> Result<Option<String>, String> {
    let mut all = headers.get_all(http::header::CONTENT_TYPE).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err("several `Content-Type` headers".into());
    }
    first
        .to_str()
        .map(|s| Some(s.to_string()))
        .map_err(|_| "`Content-Type` is not visible ASCII".into())
}

fn is_form(ct: Option<&str>) -> bool {
    // Rack and PHP cut the media type at `;`, `,` or a space:
    // `application/x-www-form-urlencoded, text/plain` is a form to them.
    ct.is_some_and(|c| {
        c.split([';', ',', ' ', '\t'])
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// Whether the body is sent with a `Content-Encoding` other than `identity` (gzip, br, ...),
/// which a server decodes before reading it; an unreadable header counts as one.
fn compressed(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .any(|v| {
            v.to_str().map_or(true, |v| {
                v.split(',').any(|c| {
                    let c = c.trim();
                    !c.is_empty() && !c.eq_ignore_ascii_case("identity")
                })
            })
        })
}

impl RuleSet {
    /// Loads a rule file.
    pub fn load(path: &Path) -> Result<RuleSet, RuleError> {
        let text = std::fs::read_to_string(path).map_err(|e| RuleError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        RuleSet::from_toml(&text, path)
    }

    /// Parses rule-file text; `origin` is used in error messages.
    pub fn from_toml(text: &str, origin: &Path) -> Result<RuleSet, RuleError> {
        rules::compile(text, origin)
    }

    /// Whether classifying this request needs its body (a GraphQL endpoint does; REST rules don't).
    pub fn needs_body(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &http::HeaderMap,
    ) -> bool {
        let (raw_path, query) = path::split_query(path_and_query);
        // A form POST may carry `_method` in its body (Rails, Laravel): the override must be seen.
        let ct = content_type(headers).ok().flatten();
        // Rack reads a POST without a Content-Type as a form, so its body is read for `_method`.
        if method.eq_ignore_ascii_case("POST") && (ct.is_none() || is_form(ct.as_deref())) {
            return true;
        }
        let Some(g) = &self.graphql else {
            return false;
        };
        let endpoint = match path::normalize_path(raw_path, self.case_insensitive) {
            Ok(norm) => {
                g.is_endpoint(&norm) || self.other_readings(&norm).iter().any(|r| g.is_endpoint(r))
            }
            // A refused path that an upstream could read as the endpoint: its body is needed to
            // know the worst it could do.
            Err(_) => path::lenient_readings(raw_path, self.case_insensitive)
                .iter()
                .any(|r| self.graphql_endpoint(r).is_some()),
        };
        if !endpoint {
            return false;
        }
        let (methods, problems) = self.candidate_methods(method, headers, query, None);
        // With an unreadable override the body is needed to judge what the other reading does.
        !problems.is_empty() || methods.iter().any(|m| m != "GET")
    }

    /// The largest body the gateway may buffer for classification; a larger one is refused.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Every action name the rules can produce, with its class (for the policy schema).
    ///
    /// GraphQL fields without a `[graphql.fields]` entry produce their own name as action with
    /// the operation-type default class; they cannot be listed since the schema is not known.
    pub fn actions(&self) -> Vec<(String, OpClass)> {
        self.actions.clone()
    }

    /// Everything the rules can produce, one entry per action (an action named by several rules
    /// counts as naming a resource when any of them does), plus the GraphQL defaults for fields
    /// without a rule. Sorted by action name.
    pub fn targets(&self) -> Vec<ActionTarget> {
        let mut out: std::collections::BTreeMap<String, ActionTarget> = Default::default();
        let mut add = |action: &str, class: OpClass, kind: &str, names: bool| {
            let t = out.entry(action.to_string()).or_insert(ActionTarget {
                action: action.to_string(),
                class,
                resource_kind: kind.to_string(),
                names_resource: names,
            });
            t.names_resource |= names;
            if t.resource_kind.is_empty() {
                t.resource_kind = kind.to_string();
            }
        };
        for r in &self.rules {
            add(&r.action, r.class, &r.resource_kind, r.resource.is_some());
        }
        if let Some(g) = &self.graphql {
            for (name, f) in &g.fields {
                add(name, f.class, &f.resource_kind, !f.resource_arg.is_empty());
            }
            for f in graphql::INTROSPECTION_FIELDS {
                add(f, g.introspection, "", false);
            }
            add(OTHER_QUERY_FIELD, g.query_default, "", false);
            add(OTHER_MUTATION_FIELD, g.mutation_default, "", false);
        }
        add(UNCLASSIFIED, self.unmatched, "", false);
        add(UNCLASSIFIABLE, OpClass::Destructive, "", false);
        out.into_values().collect()
    }

    /// Paths a common upstream serves the same as a normalised path that Airlock matches
    /// differently: without a format suffix (Rails `(.:format)`, Spring suffix matching send
    /// `/tokens.json` to `/tokens`), and a GraphQL endpoint for any path under it (Express
    /// `app.use("/graphql", ...)`, as Apollo and express-graphql are mounted, serves
    /// `/graphql/x` too). Empty for ordinary paths.
    fn other_readings(&self, norm: &str) -> Vec<String> {
        let mut out: Vec<String> = path::format_reading(norm).into_iter().collect();
        // Every endpoint is classified alike, so one GraphQL reading is enough: none when the
        // path or its suffixless reading already is an endpoint (`/graphql/v2` under `/graphql`).
        let is_endpoint = |p: &str| self.graphql.as_ref().is_some_and(|g| g.is_endpoint(p));
        if !is_endpoint(norm) && !out.iter().any(|r| is_endpoint(r)) {
            if let Some(p) = self.graphql_endpoint(norm) {
                out.push(p.to_string());
            }
        }
        out
    }

    /// The GraphQL endpoint an upstream serves a path as: the path itself, or an endpoint it
    /// lies under (Express `app.use("/graphql", ...)` serves `/graphql/x`). Every endpoint is
    /// classified alike, so the first found is as good as any.
    fn graphql_endpoint<'a>(&'a self, path: &'a str) -> Option<&'a str> {
        let g = self.graphql.as_ref()?;
        if g.is_endpoint(path) {
            return Some(path);
        }
        g.paths
            .iter()
            .find(|p| {
                *p != "/"
                    && path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .map(String::as_str)
    }

    /// The methods the upstream might act on: the request line's, then every override.
    fn candidate_methods(
        &self,
        method: &str,
        headers: &http::HeaderMap,
        query: Option<&str>,
        form_body: Option<&[u8]>,
    ) -> (Vec<String>, Vec<String>) {
        let mut problems = Vec::new();
        // Most requests name their method once, on the request line: say so without building
        // the list of every place a method can be named.
        let aliased = headers.keys().any(override_alias);
        let overridden = aliased
            || OVERRIDE_HEADERS.iter().any(|h| headers.contains_key(h))
            // A percent-encoded key (`%5Fmethod`) is decoded before it is compared.
            || query.is_some_and(|q| q.contains("_method") || q.contains('%'))
            || form_body.is_some();
        if !overridden && valid_method(method) {
            return (vec![method.to_ascii_uppercase()], problems);
        }
        let mut named: Vec<(String, String)> = vec![("request line".into(), method.to_string())];
        for h in &OVERRIDE_HEADERS {
            for v in headers.get_all(h) {
                match v.to_str() {
                    Ok(v) => named.push((format!("`{h}` header"), v.trim().to_string())),
                    Err(_) => problems.push(format!("`{h}` header is not visible ASCII")),
                }
            }
        }
        if aliased {
            for (h, v) in headers.iter().filter(|(h, _)| override_alias(h)) {
                match v.to_str() {
                    Ok(v) => named.push((format!("`{h}` header"), v.trim().to_string())),
                    Err(_) => problems.push(format!("`{h}` header is not visible ASCII")),
                }
            }
        }
        for v in path::query_values(query.unwrap_or(""), "_method") {
            named.push(("`_method` query parameter".into(), v.trim().to_string()));
        }
        if let Some(body) = form_body {
            let text = String::from_utf8_lossy(body);
            for v in path::query_values(&text, "_method") {
                named.push(("`_method` form field".into(), v.trim().to_string()));
            }
        }
        // Each candidate is classified on its own, and each bad one adds an operation: a
        // hostile body repeating `_method` must not multiply the work of one request.
        if named.len() > MAX_OVERRIDES + 1 {
            problems.push(format!(
                "{} method overrides; only the first {MAX_OVERRIDES} were read",
                named.len() - 1
            ));
            named.truncate(MAX_OVERRIDES + 1);
        }
        let mut out: Vec<String> = Vec::new();
        for (from, m) in named {
            if !valid_method(&m) {
                let shown: String = m.chars().take(40).collect();
                problems.push(format!("{from} names `{shown}`, which is not a method"));
                continue;
            }
            let m = m.to_ascii_uppercase();
            out.retain(|x| *x != m);
            out.push(m);
        }
        (out, problems)
    }

    /// Classifies a request. Never fails: what cannot be classified is destructive.
    pub fn classify(&self, req: &HttpRequest<'_>) -> Classification {
        let (raw_path, query) = path::split_query(req.path_and_query);
        // Problems make the request destructive, but classification carries on with what is
        // readable: an upstream that ignores a garbled override still executes the rest.
        let mut problems = Vec::new();
        let ct = content_type(req.headers).unwrap_or_else(|e| {
            problems.push(e);
            None
        });
        let form_body = if req.method.eq_ignore_ascii_case("POST") && is_form(ct.as_deref()) {
            // Apache's DEFLATE input filter hands the upstream the inflated form.
            if compressed(req.headers) && req.body.is_some_and(|b| !b.is_empty()) {
                problems.push(
                    "compressed form body, so a `_method` override in it cannot be checked".into(),
                );
            }
            if req.body.is_none() {
                problems.push(
                    "form body not buffered, so a `_method` override in it cannot be checked"
                        .into(),
                );
            }
            req.body
        } else if req.method.eq_ignore_ascii_case("POST") && ct.is_none() {
            // Read as Rack reads it when the gateway buffered it (it asks to: `needs_body`).
            req.body
        } else {
            None
        };
        let (methods, bad) = self.candidate_methods(req.method, req.headers, query, form_body);
        problems.extend(bad);
        let shown_method: String = req
            .method
            .chars()
            .take(40)
            .collect::<String>()
            .to_ascii_uppercase();

        let norm = match path::normalize_path(raw_path, self.case_insensitive) {
            Ok(n) => n,
            Err(e) => {
                let shown: String = raw_path.chars().take(200).collect();
                let mut acc = Acc::default();
                acc.fail(format!("path `{shown}` cannot be classified: {e}"));
                // The upstream may read the path in a way Airlock refused to guess; none of
                // those readings may reach something more dangerous than the answer.
                let mut graphql_done = false;
                for reading in path::lenient_readings(raw_path, self.case_insensitive) {
                    let endpoint = self.graphql_endpoint(&reading);
                    // Every endpoint classifies the body alike: once is enough.
                    if let Some(endpoint) = endpoint.filter(|_| !graphql_done) {
                        graphql_done = true;
                        for m in &methods {
                            let part = self.classify_method(m, endpoint, query, ct.as_deref(), req);
                            for op in part
                                .ops
                                .into_iter()
                                .filter(|o| o.class > OpClass::Destructive)
                            {
                                acc.notes.push(format!(
                                    "the path could be read as `{reading}`, served by the GraphQL endpoint `{endpoint}`: `{}`, {}",
                                    op.action, op.class
                                ));
                                acc.ops.push(op);
                            }
                        }
                    }
                    // A path under an endpoint may still have REST rules of its own.
                    if endpoint.is_some_and(|e| e == reading) {
                        continue;
                    }
                    for m in &methods {
                        let found = http_rules::best_match(&self.rules, m, &reading)
                            .filter(|m| m.rule.class > OpClass::Destructive);
                        if let Some(hit) = found {
                            acc.notes.push(format!(
                                "the path could be read as `{reading}`: `{}`, {}",
                                hit.rule.action, hit.rule.class
                            ));
                            acc.ops.push(Operation {
                                action: hit.rule.action.clone(),
                                class: hit.rule.class,
                                resource_kind: hit.rule.resource_kind.clone(),
                                resource_id: hit.resource_id,
                            });
                        }
                    }
                }
                for p in problems {
                    acc.fail(p);
                }
                return Classification {
                    operations: acc.ops,
                    effective_method: methods.last().cloned().unwrap_or(shown_method),
                    normalized_path: req.path_and_query.to_string(),
                    notes: acc.notes,
                    persisted_query_miss: false,
                    path_refused: true,
                };
            }
        };
        let normalized_path = match query {
            Some(q) => format!("{norm}?{q}"),
            None => norm.clone(),
        };
        // Overrides come after the request line, and `>=` keeps the later one on a tie: an
        // override the classes agree on is reported as the effective method.
        let mut best: Option<(String, Acc)> = None;
        let others = self.other_readings(&norm);
        for m in &methods {
            let mut acc = self.classify_method(m, &norm, query, ct.as_deref(), req);
            let base = acc.class();
            let own_resources: Vec<Option<String>> = if others.is_empty() {
                Vec::new()
            } else {
                acc.ops.iter().map(|o| o.resource_id.clone()).collect()
            };
            for reading in &others {
                let graphql = self
                    .graphql
                    .as_ref()
                    .is_some_and(|g| g.is_endpoint(reading));
                let part = self.classify_method(m, reading, query, ct.as_deref(), req);
                let counts = |o: &Operation| {
                    // The endpoint does run the body, so whatever it cannot classify counts
                    // (also when `unmatched` is below destructive).
                    if graphql {
                        return o.class > base;
                    }
                    // Of a suffixless reading, only what a rule names counts: a reading no rule
                    // covers (`/static/app` for `/static/app.js`) is not where the upstream goes.
                    if o.action == UNCLASSIFIED || o.action == UNCLASSIFIABLE {
                        return false;
                    }
                    // A change of resource matters once the request changes something: Rails
                    // deletes `db-prod` for `DELETE /v1/volumes/db-prod.x-staging`, whatever a
                    // `*-staging` glob makes of the full id. Reads keep their one resource, so an
                    // ordinary `GET /v1/domains/example.com` names no `example`.
                    o.class > base
                        || (o.class >= OpClass::Write
                            && o.resource_id.is_some()
                            && !own_resources.contains(&o.resource_id))
                };
                for op in part.ops.into_iter().filter(counts) {
                    acc.notes.push(format!(
                        "the upstream could read the path as `{reading}`: `{}`, {}",
                        op.action, op.class
                    ));
                    acc.ops.push(op);
                }
            }
            if best.as_ref().is_none_or(|(_, b)| acc.class() >= b.class()) {
                best = Some((m.clone(), acc));
            }
        }
        let (method, mut acc) = best.unwrap_or_else(|| (shown_method, Acc::default()));
        if methods.len() > 1 {
            acc.notes.push(format!(
                "method overridden: classified as {}; kept the most dangerous, `{method}`",
                methods
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for p in problems {
            acc.fail(p);
        }
        if acc.ops.is_empty() {
            acc.fail("request produced no operation".into());
        }
        let persisted_query_miss = acc.persisted_query_miss();
        Classification {
            operations: acc.ops,
            effective_method: method,
            normalized_path,
            notes: acc.notes,
            persisted_query_miss,
            path_refused: false,
        }
    }

    fn classify_method(
        &self,
        method: &str,
        norm: &str,
        query: Option<&str>,
        ct: Option<&str>,
        req: &HttpRequest<'_>,
    ) -> Acc {
        let mut acc = Acc::default();
        if let Some(g) = self.graphql.as_ref().filter(|g| g.is_endpoint(norm)) {
            let url = query.unwrap_or("");
            // A GET body is unusual, but a server that reads it would execute it.
            match req.body.filter(|b| method != "GET" || !b.is_empty()) {
                Some(b) if !b.is_empty() && compressed(req.headers) => {
                    g.fail_compressed(&mut acc);
                    g.classify_url_request(url, &mut acc);
                }
                Some(b) if b.len() > self.max_body => {
                    acc.fail(format!(
                        "body of {} bytes exceeds the classification limit of {} bytes",
                        b.len(),
                        self.max_body
                    ));
                    g.classify_url_request(url, &mut acc);
                }
                Some(b) => g.classify_body(ct, b, url, &mut acc),
                None if method == "GET" => g.classify_url(url, &mut acc),
                None => {
                    acc.fail(format!("`{method}` to a GraphQL endpoint without its body"));
                    g.classify_url_request(url, &mut acc);
                }
            }
            return acc;
        }
        match http_rules::best_match(&self.rules, method, norm) {
            Some(m) => acc.ops.push(Operation {
                action: m.rule.action.clone(),
                class: m.rule.class,
                resource_kind: m.rule.resource_kind.clone(),
                resource_id: m.resource_id,
            }),
            None => {
                acc.ops.push(Operation {
                    action: UNCLASSIFIED.to_string(),
                    class: self.unmatched,
                    resource_kind: String::new(),
                    resource_id: None,
                });
                acc.notes.push(format!(
                    "no rule matched `{method} {norm}`: treated as {}",
                    self.unmatched
                ));
            }
        }
        acc
    }
}
