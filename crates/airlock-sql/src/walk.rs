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
pub(crate) fn walk(stmt: &Value, safe_functions: &[String], max_depth: usize) -> Walked {
    let mut w = Walker {
        safe_functions,
        max_depth,
        frames: Vec::new(),
        plan_only: false,
        ctes: Vec::new(),
        out: Walked::default(),
    };
    w.value(stmt, 0);
    let mut out = w.out;
    // A name that a WITH clause defines is not a table where it is read. A write target with
    // that name is still the real table (a CTE cannot be written to), so only reads are dropped.
    let ctes = w.ctes;
    out.ops.retain(|o| {
        !(o.resource_kind == "table"
            && o.class == OpClass::Read
            && o.resource_id
                .as_deref()
                .is_some_and(|id| ctes.iter().any(|c| c == id)))
    });
    out
}

struct Walker<'a> {
    safe_functions: &'a [String],
    max_depth: usize,
    frames: Vec<Frame>,
    /// Inside `EXPLAIN` without `ANALYZE`: statements are planned, not run.
    plan_only: bool,
    ctes: Vec<String>,
    out: Walked,
}

impl Walker<'_> {
    fn raise(&mut self, class: OpClass) {
        self.out.class = Some(self.out.class.map_or(class, |c| c.max(class)));
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
                if let Some(name) = range_var_name(body) {
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
            "AExpr" => {
                let name = strings(body.get("name"));
                if !functions::operator_is_builtin(&name) {
                    self.op("function", format!("operator {}", name.join(".")), None);
                    self.raise(OpClass::Destructive);
                    self.note(format!(
                        "operator `{}` is not a built-in operator: it runs unseen code",
                        name.join(".")
                    ));
                    if let Some(o) = self.out.ops.last_mut() {
                        o.class = o.class.max(OpClass::Destructive);
                    }
                }
            }
            "CommonTableExpr" => {
                if let Some(name) = str_field(body, "ctename") {
                    self.ctes.push(name.to_string());
                }
            }
            _ => {}
        }
        self.fields(body, depth);
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
        if !wrapper {
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
        self.fields(body, depth);
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
            "InsertStmt" => fixed("INSERT", W),
            "UpdateStmt" | "DeleteStmt" => {
                let (tag, others) = if kind == "UpdateStmt" {
                    ("UPDATE", "from_clause")
                } else {
                    ("DELETE", "using_clause")
                };
                let target = Target::of(b, nonempty(b, others));
                let restricted = b
                    .get("where_clause")
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
                let restricted = b
                    .get("join_condition")
                    .and_then(unwrap_node)
                    .is_some_and(|(k, e)| target.restricts(k, e));
                let changes = b
                    .get("merge_when_clauses")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter().any(|c| {
                            let t = unwrap_node(c)
                                .and_then(|(_, c)| c.get("command_type"))
                                .and_then(Value::as_i64);
                            t == Some(protobuf::CmdType::CmdUpdate as i64)
                                || t == Some(protobuf::CmdType::CmdDelete as i64)
                        })
                    });
                if changes && !restricted {
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
            "ViewStmt" => fixed("CREATE VIEW", W),
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
                self.named("CREATE DATABASE", W, "database", str_field(b, "dbname"));
                fixed("CREATE DATABASE", W)
            }
            "DropdbStmt" => {
                self.named("DROP DATABASE", D, "database", str_field(b, "dbname"));
                fixed("DROP DATABASE", D)
            }
            "CreateDomainStmt" => fixed("CREATE DOMAIN", W),
            "CompositeTypeStmt" => fixed("CREATE TYPE", W),
            "CreateEnumStmt" => fixed("CREATE TYPE", W),
            "CreateRangeStmt" => fixed("CREATE TYPE", W),
            "AlterEnumStmt" => fixed("ALTER TYPE", W),
            "AlterTypeStmt" => fixed("ALTER TYPE", W),
            "AlterDomainStmt" => {
                // subtype 'X' drops a constraint, 'N'/'O' change NOT NULL/default.
                let drop = str_field(b, "subtype") == Some("X");
                fixed("ALTER DOMAIN", if drop { D } else { W })
            }
            "CreateStatsStmt" => fixed("CREATE STATISTICS", W),
            "AlterStatsStmt" => fixed("ALTER STATISTICS", W),
            "CommentStmt" => fixed("COMMENT", W),
            "RenameStmt" => fixed(&format!("ALTER {}", object_name(objtype("rename_type"))), W),
            "AlterObjectSchemaStmt" => {
                fixed(&format!("ALTER {}", object_name(objtype("object_type"))), W)
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
            "AlterTSDictionaryStmt" => fixed("ALTER TEXT SEARCH DICTIONARY", W),
            "AlterTSConfigurationStmt" => fixed("ALTER TEXT SEARCH CONFIGURATION", W),
            "AlterTableSpaceOptionsStmt" => fixed("ALTER TABLESPACE", W),
            "AlterTableMoveAllStmt" => fixed("ALTER TABLE", W),
            "CreateForeignTableStmt" => fixed("CREATE FOREIGN TABLE", W),
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
            "CreatePLangStmt" => fixed("CREATE LANGUAGE", D),
            "CreateTransformStmt" => fixed("CREATE TRANSFORM", D),
            "CreateAmStmt" => fixed("CREATE ACCESS METHOD", D),
            "CreateOpClassStmt" => fixed("CREATE OPERATOR CLASS", D),
            "CreateOpFamilyStmt" => fixed("CREATE OPERATOR FAMILY", D),
            "AlterOpFamilyStmt" => fixed("ALTER OPERATOR FAMILY", D),
            "AlterOperatorStmt" => fixed("ALTER OPERATOR", D),
            "CreateTableSpaceStmt" => fixed("CREATE TABLESPACE", D),
            "DropTableSpaceStmt" => fixed("DROP TABLESPACE", D),
            "DropSubscriptionStmt" => fixed("DROP SUBSCRIPTION", D),
            "PLAssignStmt" | "ReturnStmt" => fixed("PL/pgSQL", D),
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
        let (tag, class) = result;
        if !top && is_dml(kind) {
            self.note(format!(
                "{tag} nested inside another statement (e.g. in a WITH clause): destructive"
            ));
            return (tag, D.max(class));
        }
        (tag, class)
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
            let c = match subtype {
                Some(
                    T::AtDropColumn
                    | T::AtDropConstraint
                    | T::AtAlterColumnType
                    | T::AtDropExpression
                    | T::AtDetachPartition
                    | T::AtDetachPartitionFinalize
                    | T::AtDropInherit
                    | T::AtDropOf
                    | T::AtDropIdentity
                    | T::AtSetUnLogged
                    | T::AtEnableTrig
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
                ) => OpClass::Destructive,
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
        if class == OpClass::Destructive {
            self.note(
                "ALTER that drops or rewrites data, or switches triggers/rules: destructive"
                    .to_string(),
            );
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
        Target {
            relname,
            names,
            others,
        }
    }

    /// Whether the expression (node `kind` with body `e`) is a condition that can be false for
    /// some rows of the target: it must depend on the target's columns, and not in a way that is
    /// true for every row (`x = x`, `OR true`). Anything not understood does not restrict.
    fn restricts(&self, kind: &str, e: &Map<String, Value>) -> bool {
        match kind {
            "BoolExpr" => {
                let args: Vec<(&str, &Map<String, Value>)> = e
                    .get("args")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(unwrap_node).collect())
                    .unwrap_or_default();
                let op = e.get("boolop").and_then(Value::as_i64).unwrap_or(0);
                if op == BoolExprType::AndExpr as i64 {
                    args.iter().any(|(k, a)| self.restricts(k, a))
                } else if op == BoolExprType::OrExpr as i64 {
                    !args.is_empty() && args.iter().all(|(k, a)| self.restricts(k, a))
                } else if op == BoolExprType::NotExpr as i64 {
                    args.len() == 1 && args.iter().all(|(k, a)| self.restricts(k, a))
                } else {
                    false
                }
            }
            "AExpr" => {
                let k = e.get("kind").and_then(Value::as_i64).unwrap_or(0);
                let left = self.columns(e.get("lexpr"));
                let right = self.columns(e.get("rexpr"));
                if !(left.definite || right.definite) {
                    return false;
                }
                if left.possible == right.possible {
                    // `x = x`, `x = x + 0`, `x = (SELECT x)`: both sides may move together.
                    return false;
                }
                !(is_like(k, e) && only_percent(e.get("rexpr")))
            }
            "NullTest" | "BooleanTest" => self.columns(e.get("arg")).definite,
            "ColumnRef" => self.columns_of_ref(e).definite,
            "FuncCall" => self.columns(e.get("args")).definite,
            "TypeCast" => e
                .get("arg")
                .and_then(unwrap_node)
                .is_some_and(|(k, a)| self.restricts(k, a)),
            "CurrentOfExpr" => true,
            "SubLink" => {
                let t = e.get("sub_link_type").and_then(Value::as_i64).unwrap_or(0);
                // A subquery that reads the target itself (`id IN (SELECT id FROM t)`) can
                // select every row.
                if reads_relation(e.get("subselect"), &self.relname, 0) {
                    return false;
                }
                if t == SubLinkType::ExistsSublink as i64 {
                    // Correlated EXISTS: the subquery names a column of the target, qualified.
                    let inner = Target {
                        relname: self.relname.clone(),
                        names: self.names.clone(),
                        others: true,
                    };
                    inner.columns(e.get("subselect")).definite
                } else if t == SubLinkType::AnySublink as i64 || t == SubLinkType::AllSublink as i64
                {
                    self.columns(e.get("testexpr")).definite
                } else {
                    false
                }
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
        match fields.as_slice() {
            [name] => Cols {
                possible: vec![name.clone()],
                definite: !self.others,
            },
            [.., qualifier, name] if self.names.contains(qualifier) => Cols {
                possible: vec![name.clone()],
                definite: true,
            },
            _ => Cols::default(),
        }
    }
}

/// Whether a subtree reads the table `relname` (a RangeVar with that name).
fn reads_relation(v: Option<&Value>, relname: &str, depth: usize) -> bool {
    let Some(v) = v else {
        return false;
    };
    if depth > 2000 {
        // Too deep to tell: assume it does (the caller then does not count it as restricting).
        return true;
    }
    match v {
        Value::Array(a) => a
            .iter()
            .any(|x| reads_relation(Some(x), relname, depth + 1)),
        Value::Object(m) => {
            if let Some(("RangeVar", r)) = wrapped(m) {
                return str_field(r, "relname") == Some(relname);
            }
            m.values()
                .any(|x| reads_relation(Some(x), relname, depth + 1))
        }
        _ => false,
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

/// `LIKE '%'`: a pattern that matches every non-null value. A parameter may be bound to `'%'`
/// (by an extended-protocol client, or in the normalised text the cache classifies in place of
/// `LIKE 'abc'`), so it counts as matching everything; that keeps the classification monotone
/// in constants (see `normalize`). Casts and `ESCAPE` (`like_escape(pattern, escape)`, and
/// `similar_to_escape` for `SIMILAR TO`) are looked through.
fn only_percent(v: Option<&Value>) -> bool {
    match v.and_then(unwrap_node) {
        Some(("AConst", c)) => {
            let s = c
                .get("val")
                .and_then(|v| v.get("Sval"))
                .and_then(|v| v.get("sval"))
                .and_then(Value::as_str);
            s.is_some_and(|s| !s.is_empty() && s.chars().all(|c| c == '%'))
        }
        Some(("ParamRef", _)) => true,
        Some(("TypeCast", t)) => only_percent(t.get("arg")),
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
            escape && only_percent(pattern)
        }
        _ => false,
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
