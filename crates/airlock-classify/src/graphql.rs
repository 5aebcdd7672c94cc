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
                while let Some(k) = map.next_key::<String>()? {
                    let v: Json = map.next_value()?;
                    match k.as_str() {
                        "query" => r.query.push(v),
                        "variables" => r.variables.push(v),
                        "operationName" => r.operation_name.push(v),
                        _ => {}
                    }
                }
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

/// Readings of one request beyond which ambiguity is not worth resolving.
const MAX_READINGS: usize = 8;

impl GraphqlRules {
    /// Whether a normalised path is one of this upstream's GraphQL endpoints.
    pub(crate) fn is_endpoint(&self, normalized: &str) -> bool {
        self.paths.iter().any(|p| p == normalized)
    }

    /// Classifies a GraphQL request carried in the URL (`?query=&variables=&operationName=`).
    /// A repeated parameter is read every way, like a repeated JSON member.
    pub(crate) fn classify_url(&self, query_string: Option<&str>, acc: &mut Acc) {
        let qs = query_string.unwrap_or("");
        let query: Vec<Json> = path::query_values(qs, "query")
            .into_iter()
            .map(Json::String)
            .collect();
        if query.is_empty() {
            return acc.fail("GraphQL request without a `query`".into());
        }
        let mut variables = Vec::new();
        for v in path::query_values(qs, "variables")
            .into_iter()
            .filter(|v| !v.is_empty())
        {
            match serde_json::from_str::<Json>(&v) {
                Ok(j) => variables.push(j),
                Err(e) => {
                    acc.fail(format!("`variables` is not JSON: {e}"));
                    for q in query.iter().filter_map(Json::as_str) {
                        self.worst_case(q, acc);
                    }
                    return;
                }
            }
        }
        let operation_name: Vec<Json> = path::query_values(qs, "operationName")
            .into_iter()
            .filter(|n| !n.is_empty())
            .map(Json::String)
            .collect();
        self.classify_request(
            GqlRequest {
                query,
                variables,
                operation_name,
            },
            acc,
        );
    }

    /// Classifies a GraphQL request body according to its content type.
    pub(crate) fn classify_body(&self, content_type: Option<&str>, body: &[u8], acc: &mut Acc) {
        let mime = content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        match mime.as_str() {
            "application/graphql" => match std::str::from_utf8(body) {
                Ok(q) => self.classify_document(q, None, None, acc),
                Err(_) => acc.fail("GraphQL body is not UTF-8".into()),
            },
            // A missing content type is tried as JSON: most servers default to it.
            "" | "application/json" => self.classify_json(body, acc),
            m if m.starts_with("application/") && m.ends_with("+json") => {
                self.classify_json(body, acc)
            }
            other => acc.fail(format!(
                "content type `{other}` cannot be classified as GraphQL"
            )),
        }
    }

    fn classify_json(&self, body: &[u8], acc: &mut Acc) {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        match first {
            Some(b'[') => match serde_json::from_slice::<Vec<GqlRequest>>(body) {
                Ok(batch) if batch.is_empty() => acc.fail("empty GraphQL batch".into()),
                Ok(batch) if batch.len() > self.limits.max_batch => {
                    acc.fail(format!(
                        "GraphQL batch of {} requests exceeds the limit of {}",
                        batch.len(),
                        self.limits.max_batch
                    ));
                    for r in &batch {
                        for q in r.query.iter().filter_map(Json::as_str) {
                            self.worst_case(q, acc);
                        }
                    }
                }
                Ok(batch) => {
                    for r in batch {
                        self.classify_request(r, acc);
                    }
                }
                Err(e) => acc.fail(format!("GraphQL batch is not valid JSON: {e}")),
            },
            Some(b'{') => match serde_json::from_slice::<GqlRequest>(body) {
                Ok(r) => self.classify_request(r, acc),
                Err(e) => acc.fail(format!("GraphQL body is not valid JSON: {e}")),
            },
            _ => acc.fail("GraphQL body is neither a JSON object nor a JSON array".into()),
        }
    }

    /// Classifies every reading of a request (one per combination of repeated members).
    fn classify_request(&self, r: GqlRequest, acc: &mut Acc) {
        if r.query.is_empty() {
            return acc.fail("GraphQL request without a `query`".into());
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
        let readings = r.query.len() * vars.len() * names.len();
        if readings > 1 {
            acc.notes.push(format!(
                "repeated members in a GraphQL request: {readings} readings classified, the most dangerous counts"
            ));
        }
        if readings > MAX_READINGS {
            acc.fail(format!(
                "{readings} readings of one GraphQL request exceed the limit of {MAX_READINGS}"
            ));
            for q in r.query.iter().filter_map(Json::as_str) {
                self.worst_case(q, acc);
            }
            return;
        }
        for q in &r.query {
            for v in &vars {
                for n in &names {
                    self.classify_parts(q, *v, *n, acc);
                }
            }
        }
    }

    fn classify_parts(
        &self,
        query: &Json,
        variables: Option<&Json>,
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
            Some(Json::String(s)) => match serde_json::from_str::<Json>(s) {
                Ok(Json::Object(m)) => {
                    parsed = m;
                    Some(&parsed)
                }
                Ok(Json::Null) => None,
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
        self.classify_document(query, variables, name, acc);
    }

    /// Records a failure on a document, plus what the document might still do: an upstream
    /// with a laxer parser or higher limits could execute what Airlock could not classify.
    fn fail_doc(&self, text: &str, why: String, acc: &mut Acc) {
        acc.fail(why);
        self.worst_case(text, acc);
    }

    /// Adds every configured field more dangerous than `destructive` that the text names.
    /// GraphQL names cannot be escaped inside a document, so a word scan over-approximates
    /// the fields it can execute.
    fn worst_case(&self, text: &str, acc: &mut Acc) {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let bytes = text.as_bytes();
        let mut names: Vec<(&String, &FieldRule)> = self
            .fields
            .iter()
            .filter(|(_, r)| r.class > OpClass::Destructive)
            .collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        for (name, rule) in names {
            let found = text.match_indices(name.as_str()).any(|(i, _)| {
                let before = i.checked_sub(1).and_then(|j| bytes.get(j)).copied();
                let after = bytes.get(i + name.len()).copied();
                !before.is_some_and(word) && !after.is_some_and(word)
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

    /// Classifies one GraphQL document with its variables and chosen operation name.
    pub(crate) fn classify_document(
        &self,
        query: &str,
        variables: Option<&Map<String, Json>>,
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
fn default_values(op: &cst::OperationDefinition) -> HashMap<String, cst::Value> {
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
        if let (Some(n), Some(v)) = (name, value) {
            out.insert(n, v);
        }
    }
    out
}

struct OpCx<'a> {
    rules: &'a GraphqlRules,
    kind: OpKind,
    variables: Option<&'a Map<String, Json>>,
    defaults: &'a HashMap<String, cst::Value>,
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
        let Some(rule) = r.fields.get(&name) else {
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
            cst::Value::Variable(var) => {
                let name = var.name()?.text().to_string();
                match self.variables.and_then(|m| m.get(&name)) {
                    Some(j) => resolve_json(j, rest),
                    None => self.resolve(self.defaults.get(&name)?, rest, hops + 1),
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
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        },
    }
}
