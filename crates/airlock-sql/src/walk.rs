//! The walk over one statement's parse tree.
//!
//! The tree is pg_query's protobuf tree serialised to a `serde_json::Value`: that gives one
//! generic shape for all ~270 node types, so the walk visits every node (including the ones a
//! typed visitor would forget) and only the node types that matter have rules. A node wrapped
//! as `{"node": {"Kind": {...}}}` names its kind; a few kinds also appear as typed fields
//! without the wrapper (a DML target `relation`, `newowner`, a set operation's `larg`) and are
//! recognised by their fields.

use crate::functions;
use airlock_classify::Operation;
use airlock_core::OpClass;
use protobuf::{AExprKind, AlterTableType, BoolExprType, ObjectType, SubLinkType};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use pg_query::protobuf;

/// One statement-like node on the way down: what the tables under it are used for.
#[derive(Debug)]
struct Frame {
    action: String,
    class: OpClass,
    /// `PREPARE` and `EXPLAIN` only wrap the statement that counts: it is not "nested".
    wrapper: bool,
}

/// The result of walking one top-level statement.
#[derive(Debug, Default)]
pub(crate) struct Walked {
    pub(crate) tag: String,
    pub(crate) class: Option<OpClass>,
    pub(crate) ops: Vec<Operation>,
    pub(crate) notes: Vec<String>,
    pub(crate) prepared: Option<(String, OpClass)>,
    pub(crate) executes: Option<String>,
    pub(crate) too_deep: bool,
}

/// Walks the statement `stmt` (a `Node` as JSON).
pub(crate) fn walk(stmt: &Value, cfg: &crate::SqlConfig) -> Walked {
    let mut w = Walker {
        safe_functions: &cfg.safe_functions,
        safe_operators: &cfg.safe_operators,
        max_depth: cfg.max_depth,
        frames: Vec::new(),
        plan_only: false,
        cte_scope: CteScope::default(),
        besides_execute: None,
        out: Walked::default(),
    };
    w.value(stmt, 0);
    // The proxy answers `EXECUTE name` with the operations it remembered for `name`, in place
    // of this statement's; that is only right when running the prepared statement is all the
    // statement does. Parameters that call functions or read tables (`EXECUTE
    // p(set_config(...))`) or a statement around it (`CREATE TABLE x AS EXECUTE p`) would be
    // lost, so then the name is withheld and the statement keeps its own class (destructive
    // or higher).
    if w.out.executes.is_some() && w.besides_execute.is_some() {
        w.out.executes = None;
        w.note(
            "EXECUTE with more than a prepared statement to run (parameters that call \
             functions or read tables, or a statement around it): classified on its own"
                .to_string(),
        );
    }
    w.out
}

/// A stack of CTE names with a count of each, so that a look-up does not walk the stack (a
/// statement may define tens of thousands).
#[derive(Default)]
struct CteScope {
    stack: Vec<String>,
    count: HashMap<String, usize>,
}

impl CteScope {
    fn len(&self) -> usize {
        self.stack.len()
    }

    fn push(&mut self, name: String) {
        *self.count.entry(name.clone()).or_default() += 1;
        self.stack.push(name);
    }

    fn truncate(&mut self, len: usize) {
        while self.stack.len() > len {
            if let Some(name) = self.stack.pop() {
                if let Some(n) = self.count.get_mut(&name) {
                    *n -= 1;
                    if *n == 0 {
                        self.count.remove(&name);
                    }
                }
            }
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.count.contains_key(name)
    }
}

struct Walker<'a> {
    safe_functions: &'a [String],
    safe_operators: &'a [String],
    max_depth: usize,
    frames: Vec<Frame>,
    /// Inside `EXPLAIN` without `ANALYZE`: statements are planned, not run.
    plan_only: bool,
    /// The names that enclosing WITH clauses define here, innermost last: an unqualified
    /// reference to one of them reads the CTE, not a table. Scoped like PostgreSQL scopes them,
    /// so that a table of the same name elsewhere in the statement is still reported.
    cte_scope: CteScope,
    /// The highest class of everything but `EXECUTE` itself (see [`walk`]).
    besides_execute: Option<OpClass>,
    out: Walked,
}

impl Walker<'_> {
    fn raise(&mut self, class: OpClass) {
        self.out.class = Some(self.out.class.map_or(class, |c| c.max(class)));
        self.besides_execute = Some(self.besides_execute.map_or(class, |c| c.max(class)));
    }

    fn note(&mut self, note: String) {
        if !self.out.notes.contains(&note) {
            self.out.notes.push(note);
        }
    }

    /// Records an operation on a resource, used by the innermost statement.
    fn op(&mut self, kind: &str, id: String, class: Option<OpClass>) {
        let (action, frame_class) = self
            .frames
            .last()
            .map(|f| (f.action.clone(), f.class))
            .unwrap_or_else(|| (self.out.tag.clone(), OpClass::Destructive));
        let class = class.unwrap_or(frame_class);
        self.raise(class);
        if let Some(o) = self.out.ops.iter_mut().find(|o| {
            o.action == action && o.resource_kind == kind && o.resource_id.as_deref() == Some(&id)
        }) {
            o.class = o.class.max(class);
            return;
        }
        self.out.ops.push(Operation {
            action,
            class,
            resource_kind: kind.to_string(),
            resource_id: Some(id),
        });
    }

    fn value(&mut self, v: &Value, depth: usize) {
        if depth > self.max_depth {
            self.out.too_deep = true;
            return;
        }
        match v {
            Value::Array(items) => {
                for item in items {
                    self.value(item, depth + 1);
                }
            }
            Value::Object(map) => {
                if let Some((kind, body)) = wrapped(map) {
                    self.node(kind, body, depth + 1);
                } else if let Some(kind) = shape(map) {
                    self.node(kind, map, depth + 1);
                } else {
                    self.fields(map, depth + 1);
                }
            }
            _ => {}
        }
    }

    fn fields(&mut self, map: &Map<String, Value>, depth: usize) {
        for child in map.values() {
            if matches!(child, Value::Array(_) | Value::Object(_)) {
                self.value(child, depth);
            }
        }
    }

    fn node(&mut self, kind: &str, body: &Map<String, Value>, depth: usize) {
        if kind.ends_with("Stmt") {
            self.statement(kind, body, depth);
            return;
        }
        match kind {
            "RangeVar" => {
                let cte = str_field(body, "schemaname").is_none_or(str::is_empty)
                    && str_field(body, "catalogname").is_none_or(str::is_empty)
                    && str_field(body, "relname").is_some_and(|n| self.cte_scope.contains(n));
                if let Some(name) = range_var_name(body).filter(|_| !cte) {
                    self.op("table", name, None);
                }
                return;
            }
            "RoleSpec" => {
                if let Some(name) = str_field(body, "rolename").filter(|n| !n.is_empty()) {
                    self.op("role", name.to_string(), None);
                }
                return;
            }
            "FuncCall" => self.func_call(body),
            // Operators run functions wherever they are named: in expressions, in
            // `x op ANY (SELECT ...)`, in `ORDER BY x USING op`, in `EXCLUDE (c WITH op)`.
            "AExpr" => self.operator(&strings(body.get("name"))),
            "SubLink" => self.operator(&strings(body.get("oper_name"))),
            "SortBy" => self.operator(&strings(body.get("use_op"))),
            "Constraint" => {
                let exclusions = body.get("exclusions").and_then(Value::as_array);
                for e in exclusions.into_iter().flatten() {
                    let Some(("List", pair)) = unwrap_node(e) else {
                        continue;
                    };
                    let op = pair
                        .get("items")
                        .and_then(Value::as_array)
                        .and_then(|items| items.get(1))
                        .and_then(unwrap_node);
                    if let Some(("List", op)) = op {
                        self.operator(&strings(op.get("items")));
                    }
                }
            }
            "RangeTableSample" => {
                // A sampling method is a handler function looked up by name.
                let method = strings(body.get("method"));
                if !functions::tablesample_is_builtin(&method) {
                    let dotted = method.join(".");
                    self.note(format!(
                        "TABLESAMPLE method `{dotted}` is not a built-in one: it runs unseen code"
                    ));
                    self.op(
                        "function",
                        format!("tablesample {dotted}"),
                        Some(OpClass::Destructive),
                    );
                }
            }
            _ => {}
        }
        self.fields(body, depth);
    }

    /// An operator named `name` (empty: none named): a function call in disguise.
    fn operator(&mut self, name: &[String]) {
        if name.is_empty() || functions::operator_is_builtin(name) {
            return;
        }
        let dotted = name.join(".");
        if self.safe_operators.contains(&dotted) {
            return;
        }
        self.note(format!(
            "operator `{dotted}` is not a built-in operator: it runs unseen code"
        ));
        self.op(
            "function",
            format!("operator {dotted}"),
            Some(OpClass::Destructive),
        );
    }

    fn func_call(&mut self, body: &Map<String, Value>) {
        let name = strings(body.get("funcname"));
        let class = functions::class_of(&name, self.safe_functions);
        if class == OpClass::Read {
            return;
        }
        let dotted = name.join(".");
        match class {
            OpClass::Destructive => self.note(format!(
                "function `{dotted}` is not on the safe-function list: it may run unseen code"
            )),
            OpClass::Privilege => self.note(format!("function `{dotted}` changes settings")),
            _ => {}
        }
        self.op("function", dotted, Some(class));
    }

    fn statement(&mut self, kind: &str, body: &Map<String, Value>, depth: usize) {
        let top = self.frames.iter().all(|f| f.wrapper);
        let (tag, mut class) = self.rule(kind, body, top);
        let wrapper = matches!(kind, "PrepareStmt" | "ExplainStmt");
        if self.frames.is_empty() {
            self.out.tag = tag.clone();
        }
        if self.plan_only && matches!(class, OpClass::Write | OpClass::Destructive) {
            // Planned, not run: EXPLAIN without ANALYZE never executes the statement.
            class = OpClass::Read;
            self.note(format!(
                "{tag} under EXPLAIN without ANALYZE is only planned: read"
            ));
        }
        if kind == "ExecuteStmt" {
            // Not counted in `besides_execute`: the proxy may replace exactly this part.
            self.out.class = Some(self.out.class.map_or(class, |c| c.max(class)));
        } else if !wrapper {
            self.raise(class);
        }
        self.frames.push(Frame {
            action: tag,
            class,
            wrapper,
        });
        let was_plan_only = self.plan_only;
        if kind == "ExplainStmt" && !explain_analyze(body) {
            self.plan_only = true;
        }
        self.statement_fields(kind, body, depth);
        self.plan_only = was_plan_only;
        self.frames.pop();
        if kind == "PrepareStmt" && self.frames.is_empty() {
            let name = str_field(body, "name").unwrap_or_default().to_string();
            // The class of what the prepared statement will do when executed.
            let inner = self.out.class.unwrap_or(OpClass::Read);
            self.out.prepared = Some((name, inner));
        }
        if wrapper && self.out.class.is_none() {
            self.raise(OpClass::Read);
        }
    }

    /// Walks a statement's fields with the names its WITH clause defines in scope: a
    /// non-recursive CTE is visible to the CTEs after it and to the statement's body (its own
    /// body reads the table of that name), a recursive one to the whole statement. The target
    /// of a DML statement or of `SELECT INTO` is always a table, whatever a WITH defines.
    fn statement_fields(&mut self, kind: &str, body: &Map<String, Value>, depth: usize) {
        let outer = self.cte_scope.len();
        let target = match kind {
            "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => Some("relation"),
            "SelectStmt" => Some("into_clause"),
            _ => None,
        };
        if let Some(v) = target.and_then(|f| body.get(f)) {
            let scope = std::mem::take(&mut self.cte_scope);
            self.value(v, depth);
            self.cte_scope = scope;
        }
        if let Some(Value::Object(with)) = body.get("with_clause") {
            let recursive = with.get("recursive").and_then(Value::as_bool) == Some(true);
            let ctes = with.get("ctes").and_then(Value::as_array);
            let name = |c: &Value| {
                unwrap_node(c)
                    .and_then(|(_, c)| str_field(c, "ctename"))
                    .map(str::to_string)
            };
            if recursive {
                for n in ctes.into_iter().flatten().filter_map(name) {
                    self.cte_scope.push(n);
                }
            }
            for c in ctes.into_iter().flatten() {
                self.value(c, depth + 2);
                if !recursive {
                    if let Some(n) = name(c) {
                        self.cte_scope.push(n);
                    }
                }
            }
        }
        for (field, child) in body {
            if field == "with_clause" || Some(field.as_str()) == target {
                continue;
            }
            if matches!(child, Value::Array(_) | Value::Object(_)) {
                self.value(child, depth);
            }
        }
        self.cte_scope.truncate(outer);
    }

    /// The tag and the class of one statement node (not counting what is under it).
    fn rule(&mut self, kind: &str, b: &Map<String, Value>, top: bool) -> (String, OpClass) {
        use OpClass::{Destructive as D, Privilege as P, Read as R, Write as W};
        let objtype = |field: &str| object_type(b, field);
        let fixed = |tag: &str, class: OpClass| (tag.to_string(), class);
        let result = match kind {
            "SelectStmt" => {
                if b.get("into_clause").is_some_and(|v| !v.is_null()) {
                    fixed("SELECT INTO", W)
                } else if nonempty(b, "locking_clause") {
                    self.note("SELECT ... FOR UPDATE/SHARE locks rows: write".to_string());
                    fixed("SELECT", W)
                } else {
                    fixed("SELECT", R)
                }
            }
            "InsertStmt" => {
                // An upsert fed from the target itself rewrites every row it has:
                // `INSERT INTO t SELECT * FROM t ON CONFLICT (id) DO UPDATE SET a = 0`. Only
                // reads that make the source's rows count: its FROM lists (and its CTEs), not
                // a scalar subquery in VALUES or the select list (`VALUES (1, (SELECT max(x)
                // FROM t))` is one row) nor a WHERE, which only filters.
                let upsert = b
                    .get("on_conflict_clause")
                    .and_then(|c| c.get("action"))
                    .and_then(Value::as_i64)
                    == Some(protobuf::OnConflictAction::OnconflictUpdate as i64);
                let relname = target_relname(b);
                if upsert
                    && (source_rows_read(b.get("select_stmt"), &relname, 0)
                        || reads_relation(b.get("with_clause"), &relname, 0))
                {
                    self.note(
                        "INSERT ... ON CONFLICT DO UPDATE fed from its own target can update every row: destructive"
                            .to_string(),
                    );
                    fixed("INSERT", D)
                } else {
                    fixed("INSERT", W)
                }
            }
            "UpdateStmt" | "DeleteStmt" => {
                let (tag, others) = if kind == "UpdateStmt" {
                    ("UPDATE", "from_clause")
                } else {
                    ("DELETE", "using_clause")
                };
                let target = Target::of(b, nonempty(b, others));
                let restricted = !self.self_join(b, others, &target)
                    && b.get("where_clause")
                        .and_then(unwrap_node)
                        .is_some_and(|(k, e)| target.restricts(k, e));
                if restricted {
                    fixed(tag, W)
                } else {
                    self.note(format!(
                        "{tag} without a condition that restricts the target rows: destructive"
                    ));
                    fixed(tag, D)
                }
            }
            "MergeStmt" => {
                let target = Target::of(b, true);
                let joined = !self.self_join(b, "source_relation", &target)
                    && b.get("join_condition")
                        .and_then(unwrap_node)
                        .is_some_and(|(k, e)| target.restricts(k, e));
                let clauses = b.get("merge_when_clauses").and_then(Value::as_array);
                let unrestricted = clauses.into_iter().flatten().any(|c| {
                    let Some((_, c)) = unwrap_node(c) else {
                        return true;
                    };
                    let int = |f: &str| c.get(f).and_then(Value::as_i64);
                    let command = int("command_type");
                    let changes = command == Some(protobuf::CmdType::CmdUpdate as i64)
                        || command == Some(protobuf::CmdType::CmdDelete as i64);
                    let own = c
                        .get("condition")
                        .and_then(unwrap_node)
                        .is_some_and(|(k, e)| target.restricts(k, e));
                    // `WHEN NOT MATCHED BY SOURCE` acts on the target rows the join condition
                    // does NOT match (every row, when the source is empty): only the clause's
                    // own condition can restrict it.
                    let by_source = int("match_kind")
                        == Some(protobuf::MergeMatchKind::MergeWhenNotMatchedBySource as i64);
                    changes && !(own || (joined && !by_source))
                });
                if unrestricted {
                    self.note("MERGE that updates or deletes with an unrestricted join condition: destructive".to_string());
                    fixed("MERGE", D)
                } else {
                    fixed("MERGE", W)
                }
            }
            "DropStmt" => {
                let ot = objtype("remove_type");
                let tag = format!("DROP {}", object_name(ot));
                self.drop_objects(b, ot, &tag);
                let class = match ot {
                    Some(ObjectType::ObjectPolicy) => P,
                    _ => D,
                };
                (tag, class)
            }
            "TruncateStmt" => fixed("TRUNCATE TABLE", D),
            "AlterTableStmt" => {
                let tag = format!("ALTER {}", object_name(objtype("objtype")));
                let class = self.alter_table(b);
                (tag, class)
            }
            "CopyStmt" => self.copy(b),
            "ExplainStmt" => fixed("EXPLAIN", R),
            "PrepareStmt" => fixed("PREPARE", R),
            "ExecuteStmt" => {
                let name = str_field(b, "name").unwrap_or_default().to_string();
                self.note(execute_note(&name));
                self.out.executes = Some(name);
                fixed("EXECUTE", D)
            }
            "DeallocateStmt" => fixed("DEALLOCATE", R),
            "TransactionStmt" => self.transaction(b),
            "VariableShowStmt" => fixed("SHOW", R),
            "VariableSetStmt" => {
                let kind = b.get("kind").and_then(Value::as_i64).unwrap_or(0);
                let reset = kind == protobuf::VariableSetKind::VarReset as i64
                    || kind == protobuf::VariableSetKind::VarResetAll as i64;
                let name = str_field(b, "name").unwrap_or_default();
                let tag = if reset { "RESET" } else { "SET" };
                let id = if name.is_empty() { "all" } else { name };
                self.frames.push(Frame {
                    action: tag.to_string(),
                    class: P,
                    wrapper: false,
                });
                self.op("setting", id.to_string(), Some(P));
                self.frames.pop();
                fixed(tag, P)
            }
            "DiscardStmt" => {
                let mode = b.get("target").and_then(Value::as_i64).unwrap_or(0);
                if mode == protobuf::DiscardMode::DiscardPlans as i64
                    || mode == protobuf::DiscardMode::DiscardSequences as i64
                {
                    fixed("DISCARD", R)
                } else if mode == protobuf::DiscardMode::DiscardTemp as i64 {
                    fixed("DISCARD", D)
                } else {
                    self.note(
                        "DISCARD ALL resets the session's role and settings: privilege".to_string(),
                    );
                    fixed("DISCARD ALL", P)
                }
            }
            "ListenStmt" => fixed("LISTEN", R),
            "UnlistenStmt" => fixed("UNLISTEN", R),
            "NotifyStmt" => fixed("NOTIFY", W),
            "FetchStmt" => fixed("FETCH", R),
            "ClosePortalStmt" => fixed("CLOSE CURSOR", R),
            "DeclareCursorStmt" => fixed("DECLARE CURSOR", R),
            "CreateStmt" => fixed("CREATE TABLE", W),
            "CreateTableAsStmt" => match objtype("objtype") {
                Some(ObjectType::ObjectMatview) => fixed("CREATE MATERIALIZED VIEW", W),
                _ => fixed("CREATE TABLE AS", W),
            },
            "IndexStmt" => fixed("CREATE INDEX", W),
            "ViewStmt" => {
                // Replacing a view replaces its options: whose rights it runs with, and whether
                // it guards against leaky functions, like `ALTER VIEW ... SET (...)`.
                let replace = b.get("replace").and_then(Value::as_bool) == Some(true);
                if replace
                    && has_option(b.get("options"), &["security_invoker", "security_barrier"])
                {
                    self.note(
                        "CREATE OR REPLACE VIEW setting security_invoker/security_barrier: privilege"
                            .to_string(),
                    );
                    fixed("CREATE VIEW", P)
                } else {
                    fixed("CREATE VIEW", W)
                }
            }
            "CreateSeqStmt" => fixed("CREATE SEQUENCE", W),
            "AlterSeqStmt" => fixed("ALTER SEQUENCE", W),
            "CreateSchemaStmt" => {
                let name = str_field(b, "schemaname").unwrap_or_default();
                if !name.is_empty() {
                    self.frames.push(Frame {
                        action: "CREATE SCHEMA".to_string(),
                        class: W,
                        wrapper: false,
                    });
                    self.op("schema", name.to_string(), Some(W));
                    self.frames.pop();
                }
                if b.get("authrole").is_some_and(|v| !v.is_null()) {
                    fixed("CREATE SCHEMA", P)
                } else {
                    fixed("CREATE SCHEMA", W)
                }
            }
            "CreatedbStmt" => {
                // `OWNER role`, like `CREATE SCHEMA ... AUTHORIZATION role`: ownership.
                let class = if has_option(b.get("options"), &["owner"]) {
                    P
                } else {
                    W
                };
                self.named("CREATE DATABASE", class, "database", str_field(b, "dbname"));
                fixed("CREATE DATABASE", class)
            }
            "DropdbStmt" => {
                self.named("DROP DATABASE", D, "database", str_field(b, "dbname"));
                fixed("DROP DATABASE", D)
            }
            "CreateDomainStmt" => fixed("CREATE DOMAIN", W),
            "CompositeTypeStmt" => fixed("CREATE TYPE", W),
            "CreateEnumStmt" => fixed("CREATE TYPE", W),
            "CreateRangeStmt" => {
                // Support functions named here run later, inside other statements.
                if has_option(b.get("params"), &["subtype_diff", "canonical"]) {
                    self.note(
                        "CREATE TYPE ... AS RANGE naming support functions: destructive"
                            .to_string(),
                    );
                    fixed("CREATE TYPE", D)
                } else {
                    fixed("CREATE TYPE", W)
                }
            }
            "AlterEnumStmt" => fixed("ALTER TYPE", W),
            "AlterTypeStmt" => {
                // Replacing a type's I/O or support functions installs code that runs later.
                let functions = [
                    "receive",
                    "send",
                    "typmod_in",
                    "typmod_out",
                    "analyze",
                    "subscript",
                ];
                if has_option(b.get("options"), &functions) {
                    self.note("ALTER TYPE ... SET of a support function: destructive".to_string());
                    fixed("ALTER TYPE", D)
                } else {
                    fixed("ALTER TYPE", W)
                }
            }
            "AlterDomainStmt" => {
                // Subtype 'X' drops a constraint and 'N' drops NOT NULL: destructive, like
                // `ALTER TABLE ... DROP CONSTRAINT`. 'T' sets or drops the default (`DROP
                // DEFAULT` is `SET DEFAULT NULL`), 'O' sets NOT NULL, 'C'/'V' add/validate a
                // constraint: write.
                let drop = matches!(str_field(b, "subtype"), Some("X" | "N"));
                if drop {
                    self.note(
                        "ALTER DOMAIN that drops a constraint (later writes may store what it refused): destructive"
                            .to_string(),
                    );
                }
                fixed("ALTER DOMAIN", if drop { D } else { W })
            }
            "CreateStatsStmt" => fixed("CREATE STATISTICS", W),
            "AlterStatsStmt" => fixed("ALTER STATISTICS", W),
            "CommentStmt" => fixed("COMMENT", W),
            "RenameStmt" => {
                let ot = objtype("rename_type");
                let tag = format!("ALTER {}", object_name(ot));
                match ot {
                    // Roles and policies are who may do what; a database's name is what
                    // connections (and the proxy's own rules) ask for.
                    Some(
                        ObjectType::ObjectRole
                        | ObjectType::ObjectPolicy
                        | ObjectType::ObjectDatabase,
                    ) => (tag, P),
                    _ if routine(ot) || ot == Some(ObjectType::ObjectSchema) => {
                        self.note(routine_note(&tag));
                        (tag, D)
                    }
                    _ => (tag, W),
                }
            }
            "AlterObjectSchemaStmt" => {
                let ot = objtype("object_type");
                let tag = format!("ALTER {}", object_name(ot));
                if routine(ot) || ot == Some(ObjectType::ObjectExtension) {
                    self.note(routine_note(&tag));
                    (tag, D)
                } else {
                    (tag, W)
                }
            }
            "AlterObjectDependsStmt" => fixed("ALTER EXTENSION", W),
            "RefreshMatViewStmt" => fixed("REFRESH MATERIALIZED VIEW", W),
            "VacuumStmt" => {
                let vacuum = b.get("is_vacuumcmd").and_then(Value::as_bool) == Some(true);
                fixed(if vacuum { "VACUUM" } else { "ANALYZE" }, W)
            }
            "ClusterStmt" => fixed("CLUSTER", W),
            "ReindexStmt" => fixed("REINDEX", W),
            "LockStmt" => fixed("LOCK TABLE", W),
            "CheckPointStmt" => fixed("CHECKPOINT", W),
            "AlterCollationStmt" => fixed("ALTER COLLATION", W),
            "AlterDatabaseRefreshCollStmt" => fixed("ALTER DATABASE", W),
            "AlterTsdictionaryStmt" => fixed("ALTER TEXT SEARCH DICTIONARY", W),
            "AlterTsconfigurationStmt" => {
                let drop = b.get("kind").and_then(Value::as_i64)
                    == Some(protobuf::AlterTsConfigType::AlterTsconfigDropMapping as i64);
                fixed("ALTER TEXT SEARCH CONFIGURATION", if drop { D } else { W })
            }
            "AlterTableSpaceOptionsStmt" => fixed("ALTER TABLESPACE", W),
            "AlterTableMoveAllStmt" => fixed("ALTER TABLE", W),
            "ReplicaIdentityStmt" => fixed("ALTER TABLE", W),
            "CreateForeignTableStmt" => {
                if has_option(b.get("options"), SERVER_FILE_OPTIONS) {
                    self.note(server_file_note());
                    fixed("CREATE FOREIGN TABLE", D)
                } else {
                    fixed("CREATE FOREIGN TABLE", W)
                }
            }
            "ImportForeignSchemaStmt" => fixed("IMPORT FOREIGN SCHEMA", W),
            // Code the proxy cannot see, or that runs later on its own.
            "DoStmt" => {
                self.note("DO runs a code block the proxy cannot see: destructive".to_string());
                fixed("DO", D)
            }
            "CreateFunctionStmt" => {
                let procedure = b.get("is_procedure").and_then(Value::as_bool) == Some(true);
                let tag = if procedure {
                    "CREATE PROCEDURE"
                } else {
                    "CREATE FUNCTION"
                };
                let name = strings(b.get("funcname")).join(".");
                self.named(tag, D, "function", Some(&name));
                (tag.to_string(), D)
            }
            "CallStmt" => fixed("CALL", D),
            "CreateTrigStmt" => fixed("CREATE TRIGGER", D),
            "CreateEventTrigStmt" => fixed("CREATE EVENT TRIGGER", D),
            "AlterEventTrigStmt" => fixed("ALTER EVENT TRIGGER", D),
            "RuleStmt" => fixed("CREATE RULE", D),
            "CreateExtensionStmt" => fixed("CREATE EXTENSION", D),
            "AlterExtensionStmt" | "AlterExtensionContentsStmt" => fixed("ALTER EXTENSION", D),
            "DefineStmt" => fixed(&format!("CREATE {}", object_name(objtype("kind"))), D),
            "CreatePlangStmt" => fixed("CREATE LANGUAGE", D),
            "CreateTransformStmt" => fixed("CREATE TRANSFORM", D),
            "CreateAmStmt" => fixed("CREATE ACCESS METHOD", D),
            "CreateOpClassStmt" => fixed("CREATE OPERATOR CLASS", D),
            "CreateOpFamilyStmt" => fixed("CREATE OPERATOR FAMILY", D),
            "AlterOpFamilyStmt" => fixed("ALTER OPERATOR FAMILY", D),
            "AlterOperatorStmt" => fixed("ALTER OPERATOR", D),
            "CreateTableSpaceStmt" => fixed("CREATE TABLESPACE", D),
            "DropTableSpaceStmt" => fixed("DROP TABLESPACE", D),
            "DropSubscriptionStmt" => fixed("DROP SUBSCRIPTION", D),
            "PlassignStmt" | "ReturnStmt" => fixed("PL/pgSQL", D),
            // Who may do what, and how later statements are interpreted.
            "CreateRoleStmt" => {
                self.named("CREATE ROLE", P, "role", str_field(b, "role"));
                fixed("CREATE ROLE", P)
            }
            "AlterRoleStmt" => fixed("ALTER ROLE", P),
            "AlterRoleSetStmt" => fixed("ALTER ROLE", P),
            "DropRoleStmt" => fixed("DROP ROLE", P),
            "GrantStmt" => {
                let grant = b.get("is_grant").and_then(Value::as_bool) == Some(true);
                fixed(if grant { "GRANT" } else { "REVOKE" }, P)
            }
            "GrantRoleStmt" => {
                let grant = b.get("is_grant").and_then(Value::as_bool) == Some(true);
                fixed(if grant { "GRANT ROLE" } else { "REVOKE ROLE" }, P)
            }
            "AlterDefaultPrivilegesStmt" => fixed("ALTER DEFAULT PRIVILEGES", P),
            "AlterOwnerStmt" => fixed(&format!("ALTER {}", object_name(objtype("object_type"))), P),
            "ReassignOwnedStmt" => fixed("REASSIGN OWNED", P),
            "DropOwnedStmt" => fixed("DROP OWNED", P),
            "SecLabelStmt" => fixed("SECURITY LABEL", P),
            "AlterSystemStmt" => fixed("ALTER SYSTEM", P),
            "AlterDatabaseStmt" | "AlterDatabaseSetStmt" => fixed("ALTER DATABASE", P),
            "LoadStmt" => fixed("LOAD", P),
            "ConstraintsSetStmt" => fixed("SET CONSTRAINTS", P),
            "CreatePolicyStmt" => fixed("CREATE POLICY", P),
            "AlterPolicyStmt" => fixed("ALTER POLICY", P),
            "CreateCastStmt" => fixed("CREATE CAST", P),
            "CreateConversionStmt" => fixed("CREATE CONVERSION", P),
            "AlterFunctionStmt" => fixed("ALTER FUNCTION", P),
            "CreateFdwStmt" => fixed("CREATE FOREIGN DATA WRAPPER", P),
            "AlterFdwStmt" => fixed("ALTER FOREIGN DATA WRAPPER", P),
            "CreateForeignServerStmt" => fixed("CREATE SERVER", P),
            "AlterForeignServerStmt" => fixed("ALTER SERVER", P),
            "CreateUserMappingStmt" => fixed("CREATE USER MAPPING", P),
            "AlterUserMappingStmt" => fixed("ALTER USER MAPPING", P),
            "DropUserMappingStmt" => fixed("DROP USER MAPPING", P),
            "CreatePublicationStmt" => fixed("CREATE PUBLICATION", P),
            "AlterPublicationStmt" => fixed("ALTER PUBLICATION", P),
            "CreateSubscriptionStmt" => fixed("CREATE SUBSCRIPTION", P),
            "AlterSubscriptionStmt" => fixed("ALTER SUBSCRIPTION", P),
            other => {
                self.note(format!("statement kind `{other}` has no rule: destructive"));
                (other.trim_end_matches("Stmt").to_uppercase(), D)
            }
        };
        let (tag, mut class) = result;
        // Rows of the system catalogues are roles, grants, owners, settings (`UPDATE
        // pg_settings` runs set_config) and the definitions of everything: writing them is
        // changing who may do what (a superuser may).
        let writes_catalog = match kind {
            "CopyStmt" => {
                b.get("is_from").and_then(Value::as_bool) == Some(true)
                    && catalog_target(b.get("relation"))
            }
            "TruncateStmt" => b
                .get("relations")
                .and_then(Value::as_array)
                .is_some_and(|rs| rs.iter().any(|r| catalog_target(Some(r)))),
            _ => is_dml(kind) && catalog_target(b.get("relation")),
        };
        if writes_catalog {
            self.note(format!("{tag} writes a system catalogue: privilege"));
            class = class.max(P);
        }
        if !top && is_dml(kind) {
            self.note(format!(
                "{tag} nested inside another statement (e.g. in a WITH clause): destructive"
            ));
            return (tag, D.max(class));
        }
        (tag, class)
    }

    /// Whether the relations joined to the target (`others`: FROM, USING, a MERGE source)
    /// include the target table itself, directly, in a subquery or through a CTE of the
    /// statement. Every row then matches itself (`DELETE FROM t USING t t2 WHERE t.id =
    /// t2.id`), so no join condition restricts.
    fn self_join(&mut self, b: &Map<String, Value>, others: &str, target: &Target) -> bool {
        let joined = match b.get(others) {
            None | Some(Value::Null) => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        let itself = joined
            && (target.reads_target(b.get(others))
                || reads_relation(b.get("with_clause"), &target.relname, 0));
        if itself {
            self.note(format!(
                "the target `{}` is joined to itself: a join condition cannot restrict it",
                target.relname
            ));
        }
        itself
    }

    /// Records an operation on a named object that is not a RangeVar.
    fn named(&mut self, action: &str, class: OpClass, kind: &str, name: Option<&str>) {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return;
        };
        self.frames.push(Frame {
            action: action.to_string(),
            class,
            wrapper: false,
        });
        self.op(kind, name.to_string(), Some(class));
        self.frames.pop();
    }

    fn drop_objects(&mut self, b: &Map<String, Value>, ot: Option<ObjectType>, tag: &str) {
        let kind = resource_kind(ot);
        let Some(objects) = b.get("objects").and_then(Value::as_array) else {
            return;
        };
        for o in objects {
            let name = match unwrap_node(o) {
                Some(("List", l)) => strings(l.get("items")).join("."),
                Some(("String", s)) => str_field(s, "sval").unwrap_or_default().to_string(),
                Some(("ObjectWithArgs", f)) => strings(f.get("objname")).join("."),
                Some(("TypeName", t)) => strings(t.get("names")).join("."),
                _ => String::new(),
            };
            self.named(tag, OpClass::Destructive, kind, Some(&name));
        }
    }

    fn alter_table(&mut self, b: &Map<String, Value>) -> OpClass {
        let mut class = OpClass::Write;
        let cmds = b.get("cmds").and_then(Value::as_array);
        for cmd in cmds.into_iter().flatten() {
            let Some(("AlterTableCmd", c)) = unwrap_node(cmd) else {
                continue;
            };
            let subtype = c
                .get("subtype")
                .and_then(Value::as_i64)
                .and_then(|s| i32::try_from(s).ok())
                .and_then(|s| AlterTableType::try_from(s).ok());
            use AlterTableType as T;
            let note = match subtype {
                Some(T::AtDropConstraint | T::AtDropNotNull) => Some(
                    "ALTER that drops a constraint (later writes may store what it refused): destructive",
                ),
                Some(
                    T::AtEnableTrig
                    | T::AtEnableAlwaysTrig
                    | T::AtEnableReplicaTrig
                    | T::AtDisableTrig
                    | T::AtEnableTrigAll
                    | T::AtDisableTrigAll
                    | T::AtEnableTrigUser
                    | T::AtDisableTrigUser
                    | T::AtEnableRule
                    | T::AtEnableAlwaysRule
                    | T::AtEnableReplicaRule
                    | T::AtDisableRule,
                ) => Some("ALTER that switches triggers or rules: destructive"),
                Some(
                    T::AtDropColumn
                    | T::AtAlterColumnType
                    | T::AtDropExpression
                    | T::AtDetachPartition
                    | T::AtDetachPartitionFinalize
                    | T::AtDropInherit
                    | T::AtDropOf
                    | T::AtDropIdentity
                    | T::AtSetUnLogged,
                ) => Some("ALTER that drops, detaches or rewrites data: destructive"),
                None => Some("ALTER command not understood: destructive"),
                _ => None,
            };
            // Every subtype with a note above is destructive; the rest are decided here.
            if let Some(note) = note {
                self.note(note.to_string());
                class = OpClass::Destructive;
                continue;
            }
            // `DROP NOT NULL` (with `DROP CONSTRAINT`, above) relaxes a constraint: it loses no
            // data, but lets later writes store what the schema refused. `DROP DEFAULT` (a
            // default set to nothing) does what `SET DEFAULT NULL` does: write (ORMs emit it for
            // every new field with a default).
            let c = match subtype {
                Some(T::AtGenericOptions | T::AtAlterColumnGenericOptions)
                    if has_option(c.get("def"), SERVER_FILE_OPTIONS) =>
                {
                    self.note(server_file_note());
                    OpClass::Destructive
                }
                // Whose rights a view runs with, and whether it guards against leaky functions.
                Some(T::AtSetRelOptions | T::AtResetRelOptions | T::AtReplaceRelOptions)
                    if has_option(c.get("def"), &["security_invoker", "security_barrier"]) =>
                {
                    OpClass::Privilege
                }
                Some(
                    T::AtChangeOwner
                    | T::AtEnableRowSecurity
                    | T::AtDisableRowSecurity
                    | T::AtForceRowSecurity
                    | T::AtNoForceRowSecurity,
                ) => OpClass::Privilege,
                Some(_) => OpClass::Write,
                None => OpClass::Destructive,
            };
            class = class.max(c);
        }
        class
    }

    fn copy(&mut self, b: &Map<String, Value>) -> (String, OpClass) {
        let from = b.get("is_from").and_then(Value::as_bool) == Some(true);
        let program = b.get("is_program").and_then(Value::as_bool) == Some(true);
        let file = str_field(b, "filename").is_some_and(|f| !f.is_empty());
        let tag = if from { "COPY FROM" } else { "COPY TO" };
        if program {
            self.note("COPY ... PROGRAM runs a program on the server: destructive".to_string());
            return (tag.to_string(), OpClass::Destructive);
        }
        if file {
            self.note(
                "COPY with a server file reads or writes the server's files: destructive"
                    .to_string(),
            );
            return (tag.to_string(), OpClass::Destructive);
        }
        let class = if from { OpClass::Write } else { OpClass::Read };
        (tag.to_string(), class)
    }

    fn transaction(&mut self, b: &Map<String, Value>) -> (String, OpClass) {
        use protobuf::TransactionStmtKind as K;
        let kind = b
            .get("kind")
            .and_then(Value::as_i64)
            .and_then(|k| i32::try_from(k).ok())
            .and_then(|k| K::try_from(k).ok());
        let (tag, class) = match kind {
            // Whatever its modes: `READ WRITE` is the default a plain `BEGIN` gets (psycopg 3
            // sends `BEGIN READ WRITE` whenever `read_only` is False), and a read-only
            // transaction is not a security boundary in PostgreSQL (the session may `SET
            // default_transaction_read_only` anyway, which is classified on its own). The
            // statements inside are classified one by one, so the mode grants nothing.
            // `SET TRANSACTION ...` and `SET SESSION CHARACTERISTICS ...` stay privilege like
            // every `SET`: they are `VariableSetStmt`s, whose rule does not look at values.
            Some(K::TransStmtBegin) => ("BEGIN", OpClass::Read),
            Some(K::TransStmtStart) => ("START TRANSACTION", OpClass::Read),
            Some(K::TransStmtCommit) => ("COMMIT", OpClass::Read),
            Some(K::TransStmtRollback) => ("ROLLBACK", OpClass::Read),
            Some(K::TransStmtSavepoint) => ("SAVEPOINT", OpClass::Read),
            Some(K::TransStmtRelease) => ("RELEASE", OpClass::Read),
            Some(K::TransStmtRollbackTo) => ("ROLLBACK", OpClass::Read),
            Some(K::TransStmtPrepare) => ("PREPARE TRANSACTION", OpClass::Write),
            Some(K::TransStmtCommitPrepared) => {
                self.note("COMMIT PREPARED commits a transaction this session may not have classified: destructive".to_string());
                ("COMMIT PREPARED", OpClass::Destructive)
            }
            Some(K::TransStmtRollbackPrepared) => {
                self.note(
                    "ROLLBACK PREPARED discards another session's work: destructive".to_string(),
                );
                ("ROLLBACK PREPARED", OpClass::Destructive)
            }
            _ => ("TRANSACTION", OpClass::Destructive),
        };
        (tag.to_string(), class)
    }
}

/// The note for an `EXECUTE` of a prepared statement the classifier cannot see.
pub(crate) fn execute_note(name: &str) -> String {
    format!(
        "EXECUTE `{name}` runs a prepared statement whose class is the class of its PREPARE; \
         unknown here: destructive unless the proxy knows it"
    )
}

/// file_fdw's options: a foreign table with them reads a server file, or runs a program on
/// the server, every time it is scanned (like `COPY ... FROM 'file' | PROGRAM`).
const SERVER_FILE_OPTIONS: &[&str] = &["filename", "program"];

fn server_file_note() -> String {
    "foreign table options `filename`/`program` read server files or run programs: destructive"
        .to_string()
}

/// Functions, procedures, aggregates and operators: renaming one or moving it to another
/// schema puts code under a name later calls may resolve to (even a safe-listed one). So does
/// renaming a schema (all its functions move) or moving an extension to another schema (see
/// the `RenameStmt` and `AlterObjectSchemaStmt` rules).
fn routine(ot: Option<ObjectType>) -> bool {
    use ObjectType as O;
    matches!(
        ot,
        Some(
            O::ObjectFunction
                | O::ObjectProcedure
                | O::ObjectRoutine
                | O::ObjectAggregate
                | O::ObjectOperator
        )
    )
}

fn routine_note(tag: &str) -> String {
    format!("{tag} puts code under a name later calls may resolve to: destructive")
}

/// Whether a list of options (`DefElem`s, or a `List` of them) names one of `names`.
fn has_option(v: Option<&Value>, names: &[&str]) -> bool {
    let items = match v {
        Some(Value::Array(a)) => Some(a),
        Some(v) => match unwrap_node(v) {
            Some(("List", l)) => l.get("items").and_then(Value::as_array),
            _ => None,
        },
        None => None,
    };
    items.into_iter().flatten().any(|o| {
        matches!(unwrap_node(o), Some(("DefElem", d))
            if str_field(d, "defname").is_some_and(|n| names.contains(&n)))
    })
}

fn is_dml(kind: &str) -> bool {
    matches!(
        kind,
        "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt"
    )
}

/// The target of an UPDATE, DELETE or MERGE, for deciding whether a condition restricts it.
struct Target {
    /// The target table's name as written (without schema).
    relname: String,
    /// The names its columns can be qualified with: the table name and its alias.
    names: Vec<String>,
    /// Whether other relations (FROM, USING, a MERGE source) are in scope: then an unqualified
    /// column may be theirs or the target's.
    others: bool,
    /// The names WITH clauses anywhere in the statement define: a reference to one may read
    /// no table at all. Shared (not copied) by the targets derived from this one, since a
    /// statement may define tens of thousands.
    ctes: Rc<HashSet<String>>,
    /// The target's name and the names of the statement's CTEs that read it (`WITH c AS
    /// (SELECT id FROM t) DELETE FROM t WHERE id IN (SELECT c.id FROM c)`). Shared like `ctes`.
    sources: Rc<HashSet<String>>,
}

/// The columns of an expression that may belong to the target.
#[derive(Debug, Default, PartialEq)]
struct Cols {
    /// Names of columns that may be the target's: qualified with its name or alias, or
    /// unqualified (sorted, deduplicated).
    possible: Vec<String>,
    /// Whether at least one column certainly is the target's (qualified, or unqualified with
    /// no other relation in scope).
    definite: bool,
    /// Whether the target's whole row is referenced (`t`, `t.*`, `row_to_json(t)`): then every
    /// column may be.
    whole_row: bool,
}

impl Cols {
    /// Whether these columns may carry everything `other`'s do (`id + x` and `id`, `t` and
    /// `id`): a comparison of the two can then hold for every row.
    fn covers(&self, other: &Cols) -> bool {
        !other.possible.is_empty()
            && (self.whole_row || other.possible.iter().all(|c| self.possible.contains(c)))
    }
}

impl Target {
    fn of(b: &Map<String, Value>, others: bool) -> Target {
        let mut names = Vec::new();
        let mut relname = String::new();
        if let Some(Value::Object(rel)) = b.get("relation") {
            if let Some(n) = str_field(rel, "relname") {
                relname = n.to_string();
                names.push(n.to_string());
            }
            if let Some(Value::Object(alias)) = rel.get("alias") {
                if let Some(a) = str_field(alias, "aliasname") {
                    names.push(a.to_string());
                }
            }
        }
        let mut bodies = Vec::new();
        b.values().for_each(|v| cte_bodies(v, &mut bodies, 0));
        let ctes: HashSet<String> = bodies.iter().map(|(n, _)| n.to_string()).collect();
        // CTEs that read the target, directly or through one another: a walk over "is read
        // by" from the target.
        let mut readers: HashMap<String, Vec<&str>> = HashMap::new();
        for (name, body) in &bodies {
            let mut read = HashSet::new();
            relations_read(body, &mut read, 0);
            for r in read {
                readers.entry(r).or_default().push(name);
            }
        }
        let mut sources = HashSet::from([relname.clone()]);
        let mut queue = vec![relname.clone()];
        while let Some(r) = queue.pop() {
            for c in readers.get(&r).into_iter().flatten() {
                if sources.insert(c.to_string()) {
                    queue.push(c.to_string());
                }
            }
        }
        Target {
            relname,
            names,
            others,
            ctes: Rc::new(ctes),
            sources: Rc::new(sources),
        }
    }

    /// The same target seen from inside a subquery, where other relations are in scope. Shares
    /// the CTE sets: this runs once per `EXISTS`, and a statement may have thousands of both.
    fn with_others(&self) -> Target {
        Target {
            relname: self.relname.clone(),
            names: self.names.clone(),
            others: true,
            ctes: Rc::clone(&self.ctes),
            sources: Rc::clone(&self.sources),
        }
    }

    /// Whether a subtree reads the target table, directly or through a CTE.
    fn reads_target(&self, v: Option<&Value>) -> bool {
        v.is_some_and(|v| reads_any(v, &self.sources, 0))
    }

    /// Whether the expression (node `kind` with body `e`) is a condition that can be false for
    /// some rows of the target: it must depend on the target's columns, and not in a way that is
    /// true for every row (`x = x`, `OR true`). Anything not understood does not restrict.
    fn restricts(&self, kind: &str, e: &Map<String, Value>) -> bool {
        self.varies(kind, e, false)
    }

    /// Whether the condition can be false for some rows because of their data, or, when
    /// `negated`, whether it can be true for some (its negation restricts). The two differ for
    /// `AND`, `OR` and complements: `id = 5 AND false` restricts, its negation does not.
    fn varies(&self, kind: &str, e: &Map<String, Value>, negated: bool) -> bool {
        match kind {
            "BoolExpr" => {
                let args: Vec<(&str, &Map<String, Value>)> = e
                    .get("args")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(unwrap_node).collect())
                    .unwrap_or_default();
                let op = e.get("boolop").and_then(Value::as_i64).unwrap_or(0);
                let and = op == BoolExprType::AndExpr as i64;
                let or = op == BoolExprType::OrExpr as i64;
                if op == BoolExprType::NotExpr as i64 {
                    return args.len() == 1
                        && args.iter().all(|(k, a)| self.varies(k, a, !negated));
                }
                if (and && !negated) || (or && negated) {
                    // One operand that can be false makes the AND false.
                    args.iter().any(|(k, a)| self.varies(k, a, negated))
                } else if (or && !negated) || (and && negated) {
                    // An OR is false only where every operand is; `x OR NOT x` never is.
                    !args.is_empty()
                        && !has_complements(&args)
                        && args.iter().all(|(k, a)| self.varies(k, a, negated))
                } else {
                    false
                }
            }
            "AExpr" => {
                let k = e.get("kind").and_then(Value::as_i64).unwrap_or(0);
                let left = self.columns(e.get("lexpr"));
                let right = self.columns(e.get("rexpr"));
                // A subquery of the target may return every row's value: `id =
                // ANY(ARRAY(SELECT x.id FROM t x))`. Not `id = (SELECT id FROM t WHERE
                // status = 'queued' LIMIT 1)`: a value of a row its own condition selects.
                if k == AExprKind::AexprOp as i64
                    && !negated
                    && matches!(strings(e.get("name")).as_slice(), [op] if op == "=")
                {
                    for (test, sub) in [("lexpr", "rexpr"), ("rexpr", "lexpr")] {
                        let Some(("SubLink", l)) = e.get(sub).and_then(unwrap_node) else {
                            continue;
                        };
                        if l.get("sub_link_type").and_then(Value::as_i64)
                            != Some(SubLinkType::ExprSublink as i64)
                        {
                            continue;
                        }
                        if let Some(r) = self.self_subquery(e.get(test), l.get("subselect"), false)
                        {
                            return r;
                        }
                    }
                }
                if self.reads_target(e.get("lexpr")) || self.reads_target(e.get("rexpr")) {
                    return false;
                }
                // `x op ALL (array)` holds for every row when the array is empty, and so does
                // the negation of `x op ANY (array)`: `id <> ALL($1)` with `'{}'` bound.
                let vacuous = (k == AExprKind::AexprOpAll as i64 && !negated)
                    || (k == AExprKind::AexprOpAny as i64 && negated);
                // A pattern match restricts only against a literal pattern (`LIKE $1` may be
                // bound to '%').
                let pattern_ok = !is_like(k, e) || pattern_restricts(e.get("rexpr"));
                self.compares(&left, &right)
                    && pattern_ok
                    && !(vacuous && self.may_be_empty(e.get("rexpr")))
            }
            "NullTest" => self.nullable(e.get("arg"), 0),
            "BooleanTest" => {
                use protobuf::BoolTestType as B;
                let t = e.get("booltesttype").and_then(Value::as_i64).unwrap_or(0);
                let arg = e.get("arg").and_then(unwrap_node);
                if t == B::IsTrue as i64 || t == B::IsNotFalse as i64 {
                    arg.is_some_and(|(k, a)| self.varies(k, a, negated))
                } else if t == B::IsFalse as i64 || t == B::IsNotTrue as i64 {
                    arg.is_some_and(|(k, a)| self.varies(k, a, !negated))
                } else {
                    // IS [NOT] UNKNOWN: whether it is NULL.
                    self.nullable(e.get("arg"), 0)
                }
            }
            "ColumnRef" => self.columns_of_ref(e).definite,
            "FuncCall" => self.columns(e.get("args")).definite,
            "TypeCast" => e
                .get("arg")
                .and_then(unwrap_node)
                .is_some_and(|(k, a)| self.varies(k, a, negated)),
            "CurrentOfExpr" => true,
            "SubLink" => {
                let t = e.get("sub_link_type").and_then(Value::as_i64).unwrap_or(0);
                let any = t == SubLinkType::AnySublink as i64;
                let all = t == SubLinkType::AllSublink as i64;
                // `id IN (SELECT id FROM t WHERE cond)`: the rows `cond` selects (`NOT IN`: the
                // others, when it is not empty by its form).
                let op = strings(e.get("oper_name"));
                let equal = any && (op.is_empty() || op == ["="]);
                let unequal = all && op == ["<>"];
                if (equal || unequal) && !self.reads_target(e.get("testexpr")) {
                    let excluded = negated != unequal;
                    if let Some(r) =
                        self.self_subquery(e.get("testexpr"), e.get("subselect"), excluded)
                    {
                        return r;
                    }
                }
                // Any other subquery that reads the target itself (`id IN (SELECT id FROM
                // t)`) can select every row.
                if self.reads_target(e.get("subselect")) {
                    return false;
                }
                if t == SubLinkType::ExistsSublink as i64 {
                    self.correlated_exists(e.get("subselect"), negated)
                } else if any || all {
                    // `id NOT IN (SELECT 1 WHERE false)`: over no rows, ALL (and NOT ANY)
                    // holds for every row. A subquery that reads no table may be empty
                    // whatever the data.
                    // Nor may one whose form can make it empty: `LIMIT 0`, `WHERE false`, `EXCEPT`.
                    if ((all && !negated) || (any && negated))
                        && (!self.reads_table(e.get("subselect"), 0)
                            || self.may_be_empty_query(e.get("subselect")))
                    {
                        return false;
                    }
                    // `id IN (SELECT t.id FROM u)` is `id = id`: compare with what the
                    // subquery returns.
                    let left = self.columns(e.get("testexpr"));
                    left.definite && self.compares(&left, &self.output_columns(e.get("subselect")))
                } else {
                    false
                }
            }
            _ => false,
        }
    }

    /// Whether a comparison of `left` with `right` restricts: a certain target column on one
    /// side, and neither side able to carry everything the other does (`x = x`, `x = x + 0`,
    /// `x = (SELECT x)`, `x = (SELECT y FROM (SELECT t.x AS y) s)` may hold for every row).
    fn compares(&self, left: &Cols, right: &Cols) -> bool {
        (left.definite || right.definite) && !left.covers(right) && !right.covers(left)
    }

    /// A correlated `EXISTS`: its subquery's WHERE restricts the target's rows (`EXISTS
    /// (SELECT 1 FROM u WHERE u.id = t.uid)`; under NOT, the WHERE must be able to hold).
    /// Not when the subquery always returns a row whatever its WHERE (an aggregate without
    /// GROUP BY, `HAVING`, a set operation).
    fn correlated_exists(&self, subselect: Option<&Value>, negated: bool) -> bool {
        let Some(("SelectStmt", s)) = subselect.and_then(unwrap_node) else {
            return false;
        };
        let set_operation = s.get("larg").is_some_and(|l| !l.is_null());
        let having = s.get("having_clause").is_some_and(|h| !h.is_null());
        let groups = s.get("group_clause").and_then(Value::as_array);
        // `GROUP BY ()` and grouping sets make one group even of no rows.
        let grouping_set = groups
            .into_iter()
            .flatten()
            .any(|x| matches!(unwrap_node(x), Some(("GroupingSet", _))));
        let grouped = groups.is_some_and(|g| !g.is_empty());
        let may_aggregate = !grouped && calls_function(s.get("target_list"), 0);
        if set_operation || having || grouping_set || may_aggregate {
            return false;
        }
        // Under NOT, a subquery that is empty whatever the data (`LIMIT 0`, `FROM
        // generate_series(1, 0)`) makes the condition hold for every row.
        if negated && !self.rows_from_tables(s) {
            return false;
        }
        let inner = self.with_others();
        s.get("where_clause")
            .and_then(unwrap_node)
            .is_some_and(|(k, w)| inner.varies(k, w, negated))
    }

    /// `col = (SELECT col2 FROM t [x] WHERE cond ...)` or `col IN (...)` (when `excluded`, `NOT
    /// IN`) with the target table `t` alone in the subquery's FROM and the subquery never naming
    /// the outer target (its unqualified columns are then the inner copy's): the rows `cond`
    /// selects (`LIMIT`, `ORDER BY`, `FOR UPDATE SKIP LOCKED` only narrow them), so the
    /// comparison restricts exactly when `cond` does, judged on the inner copy; under `NOT IN`,
    /// when `cond` can hold and the subquery is not empty by its form. `None` when the shape is
    /// not this one (then a subquery reading the target restricts nothing).
    fn self_subquery(
        &self,
        test: Option<&Value>,
        subselect: Option<&Value>,
        excluded: bool,
    ) -> Option<bool> {
        let Some(("ColumnRef", tc)) = test.and_then(unwrap_node) else {
            return None;
        };
        let tested = self.columns_of_ref(tc);
        if !tested.definite || tested.whole_row {
            return None;
        }
        let Some(("SelectStmt", s)) = subselect.and_then(unwrap_node) else {
            return None;
        };
        let present = |f: &str| s.get(f).is_some_and(|v| !v.is_null());
        if present("larg") || present("with_clause") || nonempty(s, "values_lists") {
            return None;
        }
        let [from] = s.get("from_clause").and_then(Value::as_array)?.as_slice() else {
            return None;
        };
        let Some(("RangeVar", r)) = unwrap_node(from) else {
            return None;
        };
        let relname = str_field(r, "relname").unwrap_or_default();
        let qualified = !str_field(r, "schemaname").unwrap_or_default().is_empty();
        if relname != self.relname || (!qualified && self.ctes.contains(relname)) {
            return None;
        }
        let visible = r
            .get("alias")
            .and_then(Value::as_object)
            .and_then(|a| str_field(a, "aliasname"))
            .unwrap_or(relname)
            .to_string();
        // The one output: a column of the inner copy.
        let [out] = s.get("target_list").and_then(Value::as_array)?.as_slice() else {
            return None;
        };
        let Some(("ResTarget", rt)) = unwrap_node(out) else {
            return None;
        };
        let Some(("ColumnRef", oc)) = rt.get("val").and_then(unwrap_node) else {
            return None;
        };
        let inner = Target {
            relname: self.relname.clone(),
            names: vec![visible.clone()],
            others: false,
            ctes: Rc::clone(&self.ctes),
            sources: Rc::clone(&self.sources),
        };
        let output = inner.columns_of_ref(oc);
        if !output.definite || output.whole_row {
            return None;
        }
        // Correlated: a name of the outer target (other than the inner copy's) anywhere inside.
        let outer_only: Vec<&String> = self.names.iter().filter(|n| **n != visible).collect();
        if s.values().any(|v| names_qualifier(Some(v), &outer_only, 0)) {
            return None;
        }
        let cond = s.get("where_clause").and_then(unwrap_node);
        Some(if excluded {
            self.rows_from_tables(s) && cond.is_some_and(|(k, w)| inner.varies(k, w, true))
        } else {
            cond.is_some_and(|(k, w)| inner.varies(k, w, false))
        })
    }

    /// Whether an array operand may be empty whatever the target's data: a literal, a
    /// parameter, `ARRAY[]`, or an expression of those (`'{}'`, `$1`), not `ARRAY[...]` with
    /// elements, nor one that reads columns or tables. Literal values are not read, so a
    /// normalised text (with parameters) is classed like its texts or more dangerously.
    fn may_be_empty(&self, v: Option<&Value>) -> bool {
        match v.and_then(unwrap_node) {
            Some(("AArrayExpr", a)) => a
                .get("elements")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty),
            Some(("TypeCast", t)) => self.may_be_empty(t.get("arg")),
            // `ARRAY(SELECT ...)`: empty when the subquery is.
            Some(("SubLink", l))
                if l.get("sub_link_type").and_then(Value::as_i64)
                    == Some(SubLinkType::ArraySublink as i64) =>
            {
                !self.reads_table(l.get("subselect"), 0)
                    || self.may_be_empty_query(l.get("subselect"))
            }
            _ => !mentions(v, "ColumnRef", 0) && !self.reads_table(v, 0),
        }
    }

    /// Whether a subquery may be empty because of how it is written rather than because of the
    /// data, where that would make a condition hold for every row (`NOT IN`, `<> ALL`): it is
    /// not, only when it is a plain SELECT of rows from tables ([`Target::rows_from_tables`])
    /// whose WHERE, if any, can hold (it depends on the subquery's own tables, and is not
    /// `false` or `x AND false`).
    fn may_be_empty_query(&self, v: Option<&Value>) -> bool {
        let Some(("SelectStmt", s)) = v.and_then(unwrap_node) else {
            return true;
        };
        if !self.rows_from_tables(s) {
            return true;
        }
        let own = self.own_tables(s);
        s.get("where_clause")
            .and_then(unwrap_node)
            .is_some_and(|(k, w)| !own.varies(k, w, true))
    }

    /// Whether a subquery's rows come only from tables, so that it is empty only because of the
    /// data: a plain SELECT (no set operation, `OFFSET`, `HAVING` or `WITH`, no `LIMIT` but a
    /// positive integer literal) whose FROM
    /// is made of tables (not CTEs, functions, subqueries or samples) and joins of them (an
    /// inner join only on a condition that can hold). No FROM is one row.
    fn rows_from_tables(&self, s: &Map<String, Value>) -> bool {
        let present = |f: &str| s.get(f).is_some_and(|v| !v.is_null());
        // `LIMIT 1` (Django writes it in every `Exists`) keeps a row if there is one; `LIMIT 0`,
        // `LIMIT $1` (bound to 0) or an expression may not.
        let positive_limit = s
            .get("limit_count")
            .and_then(unwrap_node)
            .and_then(|(k, c)| (k == "AConst").then_some(c))
            .and_then(|c| c.get("val"))
            .and_then(|v| v.get("Ival"))
            .and_then(|v| v.get("ival"))
            .and_then(Value::as_i64)
            .is_some_and(|n| n > 0);
        if present("larg")
            || (present("limit_count") && !positive_limit)
            || present("limit_offset")
            || present("having_clause")
            || present("with_clause")
            || nonempty(s, "values_lists")
        {
            return false;
        }
        let own = self.own_tables(s);
        let from = s.get("from_clause").and_then(Value::as_array);
        from.into_iter()
            .flatten()
            .all(|f| self.item_of_tables(f, &own, 0))
    }

    fn item_of_tables(&self, v: &Value, own: &Target, depth: usize) -> bool {
        if depth > 200 {
            return false;
        }
        match unwrap_node(v) {
            Some(("RangeVar", r)) => {
                let qualified = !str_field(r, "schemaname").unwrap_or_default().is_empty();
                qualified
                    || !self
                        .ctes
                        .contains(str_field(r, "relname").unwrap_or_default())
            }
            Some(("JoinExpr", j)) => {
                let sides = [j.get("larg"), j.get("rarg")]
                    .into_iter()
                    .all(|x| x.is_some_and(|x| self.item_of_tables(x, own, depth + 1)));
                let outer = j.get("jointype").and_then(Value::as_i64).is_some_and(|t| {
                    t == protobuf::JoinType::JoinLeft as i64
                        || t == protobuf::JoinType::JoinRight as i64
                        || t == protobuf::JoinType::JoinFull as i64
                });
                // An outer join keeps the rows of its preserved side whatever its condition.
                let condition = outer
                    || j.get("quals")
                        .and_then(unwrap_node)
                        .is_none_or(|(k, q)| own.varies(k, q, true));
                sides && condition
            }
            _ => false,
        }
    }

    /// The tables in a subquery's FROM seen as the target of its conditions: a condition on
    /// their columns can hold for some of their rows.
    fn own_tables(&self, s: &Map<String, Value>) -> Target {
        let mut names = Vec::new();
        let mut tables = 0;
        let mut stack: Vec<&Value> = s
            .get("from_clause")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        while let Some(v) = stack.pop() {
            match unwrap_node(v) {
                Some(("RangeVar", r)) => {
                    tables += 1;
                    names.extend(str_field(r, "relname").map(str::to_string));
                    if let Some(Value::Object(alias)) = r.get("alias") {
                        names.extend(str_field(alias, "aliasname").map(str::to_string));
                    }
                }
                Some(("JoinExpr", j)) => {
                    stack.extend(j.get("larg"));
                    stack.extend(j.get("rarg"));
                    tables += 2;
                }
                _ => tables += 2,
            }
        }
        Target {
            relname: self.relname.clone(),
            names,
            // Unqualified columns are the one table's, or the outer statement's.
            others: tables > 1,
            ctes: Rc::clone(&self.ctes),
            sources: Rc::clone(&self.sources),
        }
    }

    /// Whether a subtree reads a table (a relation that is not a CTE of the statement).
    fn reads_table(&self, v: Option<&Value>, depth: usize) -> bool {
        let Some(v) = v else {
            return false;
        };
        if depth > 2000 {
            return false;
        }
        match v {
            Value::Array(a) => a.iter().any(|x| self.reads_table(Some(x), depth + 1)),
            Value::Object(m) => {
                if let Some(("RangeVar", r)) = wrapped(m) {
                    let qualified = !str_field(r, "schemaname").unwrap_or_default().is_empty();
                    let name = str_field(r, "relname").unwrap_or_default();
                    return qualified || !self.ctes.contains(name);
                }
                m.values().any(|x| self.reads_table(Some(x), depth + 1))
            }
            _ => false,
        }
    }

    /// Whether the value (`NullTest`'s argument) can be NULL for some rows and not others
    /// because of the target's data: a target column, or a built-in operator or one of a few
    /// strict built-in functions (`lower`, `trim`, ...) over one (NULL in, NULL out), through
    /// casts. `(id IS NULL) IS NOT NULL` is never NULL; other functions' strictness is unknown
    /// (`coalesce`, `nullif`), so they do not count.
    fn nullable(&self, v: Option<&Value>, depth: usize) -> bool {
        if depth > 2000 {
            return false;
        }
        match v.and_then(unwrap_node) {
            Some(("ColumnRef", c)) => self.columns_of_ref(c).definite,
            Some(("TypeCast", t)) => self.nullable(t.get("arg"), depth + 1),
            Some(("AIndirection", i)) => self.nullable(i.get("arg"), depth + 1),
            Some(("AExpr", a))
                if a.get("kind").and_then(Value::as_i64) == Some(AExprKind::AexprOp as i64) =>
            {
                self.nullable(a.get("lexpr"), depth + 1) || self.nullable(a.get("rexpr"), depth + 1)
            }
            // A strict built-in like `lower(email)`: NULL exactly when an argument is. Not an
            // aggregate or window call of it (`... OVER ()`, `FILTER`, `*`).
            Some(("FuncCall", f))
                if functions::null_follows_arguments(&strings(f.get("funcname")))
                    && ["over", "agg_filter"]
                        .iter()
                        .all(|x| f.get(*x).is_none_or(Value::is_null))
                    && f.get("agg_star").and_then(Value::as_bool) != Some(true)
                    && !nonempty(f, "agg_order") =>
            {
                f.get("args")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|a| self.nullable(Some(a), depth + 1))
            }
            _ => false,
        }
    }

    /// The columns of an expression that may be the target's, including inside subqueries
    /// (an unqualified name there may still be the target's: `id = (SELECT id)`).
    fn columns(&self, v: Option<&Value>) -> Cols {
        let mut out = Cols::default();
        if let Some(v) = v {
            self.collect_columns(v, &mut out, 0);
        }
        out.possible.sort();
        out.possible.dedup();
        out
    }

    /// The columns a subquery's rows may carry: everything but its own WHERE and HAVING,
    /// which only filter (its FROM counts: `(SELECT x FROM (SELECT t.id AS x) s)`).
    fn output_columns(&self, v: Option<&Value>) -> Cols {
        let mut out = Cols::default();
        match v.and_then(unwrap_node) {
            Some(("SelectStmt", s)) => self.select_outputs(s, &mut out, 0),
            _ => {
                if let Some(v) = v {
                    self.collect_columns(v, &mut out, 0);
                }
            }
        }
        out.possible.sort();
        out.possible.dedup();
        out
    }

    fn select_outputs(&self, s: &Map<String, Value>, out: &mut Cols, depth: usize) {
        if depth > 2000 {
            out.whole_row = true;
            return;
        }
        for (field, v) in s {
            match (field.as_str(), v) {
                ("where_clause" | "having_clause", _) => {}
                ("larg" | "rarg", Value::Object(branch)) => {
                    self.select_outputs(branch, out, depth + 1);
                }
                _ => self.collect_columns(v, out, depth + 1),
            }
        }
    }

    fn collect_columns(&self, v: &Value, out: &mut Cols, depth: usize) {
        // The statement walk has its own depth limit; this bound only keeps the recursion finite.
        if depth > 2000 {
            return;
        }
        match v {
            Value::Array(a) => a
                .iter()
                .for_each(|x| self.collect_columns(x, out, depth + 1)),
            Value::Object(m) => {
                if let Some(("ColumnRef", c)) = wrapped(m) {
                    let one = self.columns_of_ref(c);
                    out.possible.extend(one.possible);
                    out.definite |= one.definite;
                    out.whole_row |= one.whole_row;
                    return;
                }
                m.values()
                    .for_each(|x| self.collect_columns(x, out, depth + 1));
            }
            _ => {}
        }
    }

    fn columns_of_ref(&self, c: &Map<String, Value>) -> Cols {
        let fields = strings(c.get("fields"));
        let star = c.get("fields").and_then(Value::as_array).is_some_and(|f| {
            f.iter()
                .any(|x| matches!(unwrap_node(x), Some(("AStar", _))))
        });
        match fields.as_slice() {
            // `tableoid` is the same for every row of a table: comparing it restricts nothing.
            [.., name] if name == "tableoid" => Cols::default(),
            // `t` or `t.*`: the target's whole row (or a column named like the table).
            [name] if self.names.contains(name) => Cols {
                possible: vec![name.clone()],
                definite: true,
                whole_row: true,
            },
            // `u.*`: another relation's row.
            [_] if star => Cols::default(),
            [name] => Cols {
                possible: vec![name.clone()],
                definite: !self.others,
                whole_row: false,
            },
            [.., qualifier, name] if self.names.contains(qualifier) => Cols {
                possible: vec![name.clone()],
                definite: true,
                whole_row: false,
            },
            _ => Cols::default(),
        }
    }
}

/// Whether two of the operands are each other's negation, so that their OR holds for every
/// row (`x IS NULL OR x IS NOT NULL`, `d OR NOT d`, `a = 1 OR a <> 1`) and their AND for none.
/// Constants compare equal to each other, whatever their values (so a normalised text with
/// parameters is classed at least as dangerous as the text). Each operand that has a negation
/// is reduced to the key of that negation, and only the operands of a kind some negation has
/// are reduced to keys to look them up among: one call costs the size of those operands. It is
/// not linear in the whole condition: [`Target::varies`] calls it again for every nested
/// AND/OR, so an operand nested `d` levels deep may be keyed `d` times (`d` is bounded by the
/// parser's nesting limit), but nothing is copied except the one node a negation changes.
fn has_complements(args: &[(&str, &Map<String, Value>)]) -> bool {
    let key = |kind: &str, body: &Map<String, Value>| {
        let mut k = String::new();
        canon_node(kind, body, &mut k, 0);
        k
    };
    let negations: Vec<Cow<'_, Value>> = args
        .iter()
        .filter_map(|(kind, body)| negation(kind, body))
        .collect();
    if negations.is_empty() {
        return false;
    }
    let mut wanted: HashSet<String> = HashSet::new();
    let mut negation_keys: Vec<String> = Vec::new();
    for n in &negations {
        if let Some((k, b)) = unwrap_node(n) {
            wanted.insert(k.to_string());
            negation_keys.push(key(k, b));
        }
    }
    let keys: HashSet<String> = args
        .iter()
        .filter(|(k, _)| wanted.contains(*k))
        .map(|(k, b)| key(k, b))
        .collect();
    negation_keys.iter().any(|k| keys.contains(k))
}

/// The condition that is true exactly where `kind`/`body` is false (NULLs aside), for the
/// shapes [`has_complements`] knows: `NOT x` and `x`, `IS [NOT] NULL`, `IS [NOT] TRUE|FALSE|
/// UNKNOWN`, `=`/`<>`, `<`/`>=`, `>`/`<=`, `[NOT] LIKE`, `IS [NOT] DISTINCT FROM`, `[NOT]
/// BETWEEN`.
/// Nothing is copied unless the node has a negation: the fields to change are decided first.
fn negation<'v>(kind: &str, body: &'v Map<String, Value>) -> Option<Cow<'v, Value>> {
    use protobuf::{BoolTestType as B, NullTestType as N};
    let int = |f: &str| body.get(f).and_then(Value::as_i64).unwrap_or(0);
    let mut changes: Vec<(&str, Value)> = Vec::new();
    match kind {
        "BoolExpr" if int("boolop") == BoolExprType::NotExpr as i64 => {
            return match body
                .get("args")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                Some([x]) => Some(Cow::Borrowed(x)),
                _ => None,
            };
        }
        "NullTest" => {
            let t = match int("nulltesttype") {
                t if t == N::IsNull as i64 => N::IsNotNull,
                t if t == N::IsNotNull as i64 => N::IsNull,
                _ => return None,
            };
            changes.push(("nulltesttype", Value::from(t as i64)));
        }
        "BooleanTest" => {
            let pairs = [
                (B::IsTrue, B::IsNotTrue),
                (B::IsFalse, B::IsNotFalse),
                (B::IsUnknown, B::IsNotUnknown),
            ];
            let t = int("booltesttype");
            let other = pairs.iter().find_map(|(x, y)| {
                if t == *x as i64 {
                    Some(*y)
                } else if t == *y as i64 {
                    Some(*x)
                } else {
                    None
                }
            })?;
            changes.push(("booltesttype", Value::from(other as i64)));
        }
        "AExpr" => {
            use AExprKind as K;
            let kinds = [
                (K::AexprDistinct, K::AexprNotDistinct),
                (K::AexprBetween, K::AexprNotBetween),
                (K::AexprBetweenSym, K::AexprNotBetweenSym),
            ];
            let k = int("kind");
            let other_kind = kinds.iter().find_map(|(x, y)| {
                if k == *x as i64 {
                    Some(*y)
                } else if k == *y as i64 {
                    Some(*x)
                } else {
                    None
                }
            });
            if let Some(other) = other_kind {
                changes.push(("kind", Value::from(other as i64)));
                // `BETWEEN`'s name says which: "BETWEEN" or "NOT BETWEEN".
                let names = strings(body.get("name"));
                if let [n] = names.as_slice() {
                    let negated = match n.strip_prefix("NOT ") {
                        Some(positive) => positive.to_string(),
                        None if n.contains("BETWEEN") => format!("NOT {n}"),
                        None => n.clone(),
                    };
                    changes.push(("name", name_list(&negated)));
                }
            } else {
                let ops = [
                    ("=", "<>"),
                    ("<", ">="),
                    (">", "<="),
                    ("~~", "!~~"),
                    ("~~*", "!~~*"),
                    ("~", "!~"),
                    ("~*", "!~*"),
                ];
                let names = strings(body.get("name"));
                let [op] = names.as_slice() else {
                    return None;
                };
                let other = ops.iter().find_map(|(x, y)| {
                    if op == x {
                        Some(*y)
                    } else if op == y {
                        Some(*x)
                    } else {
                        None
                    }
                })?;
                changes.push(("name", name_list(other)));
            }
        }
        _ => return None,
    }
    let mut flipped = body.clone();
    for (field, value) in changes {
        flipped.insert(field.to_string(), value);
    }
    Some(Cow::Owned(wrap(kind, Value::Object(flipped))))
}

/// `{"node": {kind: body}}`.
fn wrap(kind: &str, body: Value) -> Value {
    let mut inner = Map::new();
    inner.insert(kind.to_string(), body);
    let mut outer = Map::new();
    outer.insert("node".to_string(), Value::Object(inner));
    Value::Object(outer)
}

/// An operator's name as the parser writes it: a list of one `String` node.
fn name_list(op: &str) -> Value {
    let mut s = Map::new();
    s.insert("sval".to_string(), Value::from(op));
    Value::Array(vec![wrap("String", Value::Object(s))])
}

/// A key for a node that is the same for two expressions that differ only in where they are
/// written and in the values of their constants.
/// A comparison's operands are put in one order (the operator mirrored when they are swapped),
/// so that `1 <> a` and `5 <= a` are keyed like `a <> 1` and `a >= 5`.
fn canon_node(kind: &str, body: &Map<String, Value>, out: &mut String, depth: usize) {
    if kind == "AExpr" && canon_comparison(body, out, depth) {
        return;
    }
    out.push_str(kind);
    out.push('{');
    canon_map(body, out, depth + 1);
    out.push('}');
}

/// The key of `l op r` for a comparison operator `op` (see [`canon_node`]); false when the
/// node is not one.
fn canon_comparison(body: &Map<String, Value>, out: &mut String, depth: usize) -> bool {
    const MIRRORED: [(&str, &str); 6] = [
        ("=", "="),
        ("<>", "<>"),
        ("<", ">"),
        (">", "<"),
        ("<=", ">="),
        (">=", "<="),
    ];
    if body.get("kind").and_then(Value::as_i64) != Some(AExprKind::AexprOp as i64) {
        return false;
    }
    let names = strings(body.get("name"));
    let [op] = names.as_slice() else {
        return false;
    };
    let Some(mirror) = MIRRORED.iter().find(|(x, _)| x == op).map(|(_, y)| *y) else {
        return false;
    };
    let (Some(l), Some(r)) = (body.get("lexpr"), body.get("rexpr")) else {
        return false;
    };
    let (mut lk, mut rk) = (String::new(), String::new());
    canon(l, &mut lk, depth + 1);
    canon(r, &mut rk, depth + 1);
    let op = if lk > rk {
        std::mem::swap(&mut lk, &mut rk);
        mirror
    } else {
        op.as_str()
    };
    out.push_str("Comparison{");
    out.push_str(op);
    out.push(',');
    out.push_str(&lk);
    out.push(',');
    out.push_str(&rk);
    out.push('}');
    true
}

fn canon_map(m: &Map<String, Value>, out: &mut String, depth: usize) {
    for (k, v) in m {
        if k.ends_with("location") {
            continue;
        }
        out.push_str(k);
        out.push(':');
        canon(v, out, depth + 1);
        out.push(',');
    }
}

fn canon(v: &Value, out: &mut String, depth: usize) {
    if depth > 2000 {
        // Too deep to tell apart: one key for all (they then count as the same expression,
        // and a condition with complements does not restrict).
        out.push('…');
        return;
    }
    if constant(v) {
        out.push('$');
        return;
    }
    match v {
        Value::Object(m) => {
            if let Some(("AExpr", e)) = wrapped(m) {
                if canon_comparison(e, out, depth) {
                    return;
                }
            }
            out.push('{');
            canon_map(m, out, depth + 1);
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for x in a {
                canon(x, out, depth + 1);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A literal or a parameter, possibly with a sign (`-5` is one constant, `-$1` an operator
/// applied to a parameter) or a cast (`1::int`, `$1::text`).
fn constant(v: &Value) -> bool {
    match v.as_object().and_then(wrapped) {
        Some(("AConst" | "ParamRef", _)) => true,
        Some(("TypeCast", c)) => c.get("arg").is_some_and(constant),
        Some(("AExpr", e)) => {
            e.get("lexpr").is_none_or(Value::is_null)
                && matches!(strings(e.get("name")).as_slice(), [op] if op == "-" || op == "+")
                && e.get("rexpr").is_some_and(constant)
        }
        _ => false,
    }
}

/// Whether a subtree has a column reference qualified with (or a whole-row reference to) one of
/// `names`.
fn names_qualifier(v: Option<&Value>, names: &[&String], depth: usize) -> bool {
    let Some(v) = v else {
        return false;
    };
    if depth > 2000 {
        return true;
    }
    match v {
        Value::Array(a) => a.iter().any(|x| names_qualifier(Some(x), names, depth + 1)),
        Value::Object(m) => {
            if let Some(("ColumnRef", c)) = wrapped(m) {
                let fields = strings(c.get("fields"));
                let qualifier = match fields.as_slice() {
                    [one] => Some(one),
                    [.., q, _] => Some(q),
                    [] => None,
                };
                return qualifier.is_some_and(|q| names.contains(&q));
            }
            m.values()
                .any(|x| names_qualifier(Some(x), names, depth + 1))
        }
        _ => false,
    }
}

/// Whether a subtree calls a function (which may be an aggregate).
fn calls_function(v: Option<&Value>, depth: usize) -> bool {
    let Some(v) = v else {
        return false;
    };
    if depth > 2000 {
        return true;
    }
    match v {
        Value::Array(a) => a.iter().any(|x| calls_function(Some(x), depth + 1)),
        Value::Object(m) => {
            matches!(wrapped(m), Some(("FuncCall", _)))
                || m.values().any(|x| calls_function(Some(x), depth + 1))
        }
        _ => false,
    }
}

/// The name of a statement's target table (`relation`), as written without schema.
fn target_relname(b: &Map<String, Value>) -> String {
    b.get("relation")
        .and_then(Value::as_object)
        .and_then(|r| str_field(r, "relname"))
        .unwrap_or_default()
        .to_string()
}

/// Whether a statement's target (`relation`) is a system catalogue: `pg_catalog.x`, or an
/// unqualified `pg_x`, which resolves to `pg_catalog` first.
fn catalog_target(rel: Option<&Value>) -> bool {
    let Some(Value::Object(rel)) = rel else {
        return false;
    };
    let rel = match wrapped(rel) {
        Some(("RangeVar", r)) => r,
        _ => rel,
    };
    match str_field(rel, "schemaname").unwrap_or_default() {
        "pg_catalog" => true,
        "" => str_field(rel, "relname").is_some_and(|n| n.starts_with("pg_")),
        _ => false,
    }
}

/// Whether the rows of an `INSERT`'s source (a `SelectStmt`) may come from the table
/// `relname`: its FROM lists, its WITH clauses, through set operations. Anything that is not a
/// plain SELECT is searched whole.
fn source_rows_read(v: Option<&Value>, relname: &str, depth: usize) -> bool {
    let Some(v) = v else {
        return false;
    };
    if depth > 200 {
        return true;
    }
    let s = match v.as_object() {
        Some(m) => match wrapped(m) {
            Some(("SelectStmt", s)) => s,
            Some(_) => return reads_relation(Some(v), relname, depth),
            None if shape(m) == Some("SelectStmt") => m,
            None => return reads_relation(Some(v), relname, depth),
        },
        None => return reads_relation(Some(v), relname, depth),
    };
    let present = |f: &str| s.get(f).is_some_and(|x| !x.is_null());
    if present("larg") || present("rarg") {
        return source_rows_read(s.get("larg"), relname, depth + 1)
            || source_rows_read(s.get("rarg"), relname, depth + 1)
            || reads_relation(s.get("with_clause"), relname, depth);
    }
    reads_relation(s.get("from_clause"), relname, depth)
        || reads_relation(s.get("with_clause"), relname, depth)
}

/// Whether a subtree reads the table `relname` (a RangeVar with that name).
fn reads_relation(v: Option<&Value>, relname: &str, depth: usize) -> bool {
    v.is_some_and(|v| reads_named(v, &|n| n == relname, depth))
}

/// Whether a subtree reads a relation named one of `names` (a RangeVar, schema aside).
fn reads_any(v: &Value, names: &HashSet<String>, depth: usize) -> bool {
    reads_named(v, &|n| names.contains(n), depth)
}

/// Whether a subtree reads a relation whose name `wanted` accepts (a RangeVar, schema aside).
fn reads_named(v: &Value, wanted: &dyn Fn(&str) -> bool, depth: usize) -> bool {
    if depth > 2000 {
        // Too deep to tell: assume it does (the caller then does not count it as restricting).
        return true;
    }
    match v {
        Value::Array(a) => a.iter().any(|x| reads_named(x, wanted, depth + 1)),
        Value::Object(m) => {
            if let Some(("RangeVar", r)) = wrapped(m) {
                return wanted(str_field(r, "relname").unwrap_or_default());
            }
            m.values().any(|x| reads_named(x, wanted, depth + 1))
        }
        _ => false,
    }
}

/// The names of the relations a subtree reads (RangeVars, schema aside).
fn relations_read(v: &Value, out: &mut HashSet<String>, depth: usize) {
    if depth > 2000 {
        return;
    }
    match v {
        Value::Array(a) => a.iter().for_each(|x| relations_read(x, out, depth + 1)),
        Value::Object(m) => {
            if let Some(("RangeVar", r)) = wrapped(m) {
                out.extend(str_field(r, "relname").map(str::to_string));
                return;
            }
            m.values().for_each(|x| relations_read(x, out, depth + 1));
        }
        _ => {}
    }
}

/// A pattern match: `LIKE`, `ILIKE`, `SIMILAR TO`, or their operators `~~` and `~~*`.
fn is_like(kind: i64, e: &Map<String, Value>) -> bool {
    if kind == AExprKind::AexprLike as i64
        || kind == AExprKind::AexprIlike as i64
        || kind == AExprKind::AexprSimilar as i64
    {
        return true;
    }
    kind == AExprKind::AexprOp as i64
        && matches!(strings(e.get("name")).as_slice(), [op] if op == "~~" || op == "~~*")
}

/// Whether a `LIKE` pattern restricts: a string literal (through casts and `ESCAPE`) other
/// than `'%'`, `'%%'`, .... Anything else may match every non-null value: a parameter may be
/// bound to `'%'` (by an extended-protocol client, or in the normalised text the cache
/// classifies in place of `LIKE 'abc'`), and an expression may compute it (`'%' || ''`). That
/// keeps the classification monotone in constants (see `normalize`). `ESCAPE` is
/// `like_escape(pattern, escape)`, and `similar_to_escape` for `SIMILAR TO`.
fn pattern_restricts(v: Option<&Value>) -> bool {
    match v.and_then(unwrap_node) {
        Some(("AConst", c)) => {
            let s = c
                .get("val")
                .and_then(|v| v.get("Sval"))
                .and_then(|v| v.get("sval"))
                .and_then(Value::as_str);
            s.is_some_and(|s| s.is_empty() || s.chars().any(|c| c != '%'))
        }
        Some(("TypeCast", t)) => pattern_restricts(t.get("arg")),
        Some(("FuncCall", f)) => {
            let escape = matches!(
                strings(f.get("funcname")).as_slice(),
                [schema, name] if schema == "pg_catalog"
                    && (name == "like_escape" || name == "similar_to_escape")
            );
            let pattern = f
                .get("args")
                .and_then(Value::as_array)
                .and_then(|a| a.first());
            escape && pattern_restricts(pattern)
        }
        _ => false,
    }
}

/// Whether a subtree contains a node of `kind`.
fn mentions(v: Option<&Value>, kind: &str, depth: usize) -> bool {
    let Some(v) = v else {
        return false;
    };
    if depth > 2000 {
        // Too deep to tell: not found (its one caller then does not count it as restricting).
        return false;
    }
    match v {
        Value::Array(a) => a.iter().any(|x| mentions(Some(x), kind, depth + 1)),
        Value::Object(m) => {
            wrapped(m).is_some_and(|(k, _)| k == kind)
                || m.values().any(|x| mentions(Some(x), kind, depth + 1))
        }
        _ => false,
    }
}

/// The name and query of every CTE in a subtree.
fn cte_bodies<'v>(v: &'v Value, out: &mut Vec<(&'v str, &'v Value)>, depth: usize) {
    if depth > 2000 {
        return;
    }
    match v {
        Value::Array(a) => a.iter().for_each(|x| cte_bodies(x, out, depth + 1)),
        Value::Object(m) => {
            if let Some(("CommonTableExpr", c)) = wrapped(m) {
                if let (Some(name), Some(query)) = (str_field(c, "ctename"), c.get("ctequery")) {
                    out.push((name, query));
                }
            }
            m.values().for_each(|x| cte_bodies(x, out, depth + 1));
        }
        _ => {}
    }
}

fn explain_analyze(b: &Map<String, Value>) -> bool {
    let options = b.get("options").and_then(Value::as_array);
    options.into_iter().flatten().any(|o| {
        let Some(("DefElem", d)) = unwrap_node(o) else {
            return false;
        };
        if str_field(d, "defname") != Some("analyze") {
            return false;
        }
        // `ANALYZE false` / `ANALYZE off` turn it off; a missing argument means on.
        match d.get("arg").and_then(unwrap_node) {
            None => true,
            Some(("String", s)) => {
                !matches!(str_field(s, "sval"), Some("false" | "off" | "0" | "no"))
            }
            Some(("Boolean", s)) => s.get("boolval").and_then(Value::as_bool) == Some(true),
            Some(("Integer", i)) => i.get("ival").and_then(Value::as_i64).unwrap_or(0) != 0,
            Some(_) => true,
        }
    })
}

fn object_type(b: &Map<String, Value>, field: &str) -> Option<ObjectType> {
    b.get(field)
        .and_then(Value::as_i64)
        .and_then(|t| i32::try_from(t).ok())
        .and_then(|t| ObjectType::try_from(t).ok())
}

/// `OBJECT_MATVIEW` -> `MATERIALIZED VIEW`.
fn object_name(ot: Option<ObjectType>) -> String {
    match ot {
        Some(ObjectType::ObjectMatview) => "MATERIALIZED VIEW".to_string(),
        Some(ObjectType::ObjectFdw) => "FOREIGN DATA WRAPPER".to_string(),
        Some(ObjectType::ObjectForeignServer) => "SERVER".to_string(),
        Some(ObjectType::ObjectTabconstraint) => "CONSTRAINT".to_string(),
        Some(ObjectType::ObjectStatisticExt) => "STATISTICS".to_string(),
        Some(ObjectType::ObjectLargeobject) => "LARGE OBJECT".to_string(),
        Some(ObjectType::ObjectEventTrigger) => "EVENT TRIGGER".to_string(),
        Some(ObjectType::ObjectForeignTable) => "FOREIGN TABLE".to_string(),
        Some(ot) => ot
            .as_str_name()
            .trim_start_matches("OBJECT_")
            .replace('_', " "),
        None => "OBJECT".to_string(),
    }
}

fn resource_kind(ot: Option<ObjectType>) -> &'static str {
    use ObjectType as O;
    match ot {
        Some(
            O::ObjectTable
            | O::ObjectView
            | O::ObjectMatview
            | O::ObjectIndex
            | O::ObjectSequence
            | O::ObjectForeignTable,
        ) => "table",
        Some(O::ObjectSchema) => "schema",
        Some(O::ObjectFunction | O::ObjectProcedure | O::ObjectRoutine | O::ObjectAggregate) => {
            "function"
        }
        Some(O::ObjectDatabase) => "database",
        Some(O::ObjectRole) => "role",
        Some(O::ObjectType | O::ObjectDomain) => "type",
        _ => "object",
    }
}

fn nonempty(b: &Map<String, Value>, field: &str) -> bool {
    b.get(field)
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

fn str_field<'a>(m: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    m.get(field).and_then(Value::as_str)
}

/// `{"node": {"Kind": body}}` -> `(Kind, body)`.
fn wrapped(m: &Map<String, Value>) -> Option<(&str, &Map<String, Value>)> {
    if m.len() != 1 {
        return None;
    }
    let inner = m.get("node")?.as_object()?;
    if inner.len() != 1 {
        return None;
    }
    let (k, v) = inner.iter().next()?;
    Some((k.as_str(), v.as_object()?))
}

fn unwrap_node(v: &Value) -> Option<(&str, &Map<String, Value>)> {
    wrapped(v.as_object()?)
}

/// Kinds that also appear as typed (unwrapped) fields, recognised by their fields.
fn shape(m: &Map<String, Value>) -> Option<&'static str> {
    if m.contains_key("relname") && m.contains_key("relpersistence") {
        Some("RangeVar")
    } else if m.contains_key("roletype") && m.contains_key("rolename") {
        Some("RoleSpec")
    } else if m.contains_key("funcname") && m.contains_key("agg_star") {
        Some("FuncCall")
    } else if m.contains_key("target_list") && m.contains_key("larg") {
        Some("SelectStmt")
    } else {
        None
    }
}

/// The `sval`s of a list of `String` nodes (a qualified name).
fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(unwrap_node)
                .filter_map(|(k, s)| (k == "String").then(|| str_field(s, "sval")).flatten())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `catalog.schema.name` as written (empty parts left out).
fn range_var_name(b: &Map<String, Value>) -> Option<String> {
    let parts: Vec<&str> = ["catalogname", "schemaname", "relname"]
        .iter()
        .filter_map(|f| str_field(b, f))
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("."))
}
