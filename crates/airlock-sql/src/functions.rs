//! Which functions and operators a statement may call without being destructive.
//!
//! A function call runs code the proxy cannot see, so the default is destructive; these lists
//! name built-in functions that only compute a value from their arguments (or read harmless
//! session facts). Names are matched exactly as PostgreSQL resolved them: the parser already
//! folded unquoted identifiers to lower case, so `"LOWER"(x)` (a quoted, different name) is
//! not `lower(x)`.

use airlock_core::OpClass;

/// Built-in functions without side effects: aggregates, window functions, maths, strings,
/// dates, JSON, arrays, text search and catalogue look-ups.
#[rustfmt::skip]
const SAFE: &[&str] = &[
    // aggregates and window functions
    "count", "sum", "avg", "min", "max", "bool_and", "bool_or", "every", "array_agg",
    "string_agg", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg", "stddev",
    "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "corr", "covar_pop",
    "covar_samp", "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2",
    "regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "percentile_cont", "percentile_disc",
    "mode", "rank", "dense_rank", "row_number", "percent_rank", "cume_dist", "ntile", "lag",
    "lead", "first_value", "last_value", "nth_value", "bit_and", "bit_or", "bit_xor",
    "any_value",
    // maths
    "abs", "ceil", "ceiling", "floor", "round", "trunc", "sign", "sqrt", "cbrt", "power", "pow",
    "exp", "ln", "log", "log10", "mod", "div", "pi", "degrees", "radians", "sin", "cos", "tan",
    "asin", "acos", "atan", "atan2", "greatest", "least", "width_bucket", "gcd", "lcm",
    "factorial", "random", "scale", "numeric", "int4", "int8", "float8", "text",
    // strings
    "lower", "upper", "length", "char_length", "character_length", "octet_length", "bit_length",
    "substring", "substr", "position", "strpos", "trim", "btrim", "ltrim", "rtrim", "lpad",
    "rpad", "replace", "reverse", "left", "right", "repeat", "split_part", "concat",
    "concat_ws", "format", "initcap", "translate", "regexp_replace", "regexp_match",
    "regexp_matches", "regexp_split_to_array", "regexp_split_to_table", "regexp_like",
    "regexp_count", "regexp_instr", "regexp_substr", "starts_with", "md5", "sha224", "sha256",
    "sha384", "sha512", "encode", "decode", "to_hex", "ascii", "chr", "quote_ident",
    "quote_literal", "quote_nullable", "string_to_array", "array_to_string", "overlay",
    "unistr", "normalize", "similar_to_escape", "to_ascii",
    // dates and times
    "now", "date_trunc", "date_part", "extract", "age", "to_char", "to_date", "to_timestamp",
    "to_number", "make_date", "make_time", "make_timestamp", "make_timestamptz",
    "make_interval", "clock_timestamp", "statement_timestamp", "transaction_timestamp",
    "timeofday", "date_bin", "isfinite", "justify_days", "justify_hours", "justify_interval",
    "timezone",
    // JSON
    "to_json", "to_jsonb", "json_build_object", "jsonb_build_object", "json_build_array",
    "jsonb_build_array", "json_object", "jsonb_object", "json_extract_path",
    "json_extract_path_text", "jsonb_extract_path", "jsonb_extract_path_text",
    "json_array_length", "jsonb_array_length", "json_array_elements", "jsonb_array_elements",
    "json_array_elements_text", "jsonb_array_elements_text", "json_each", "jsonb_each",
    "json_each_text", "jsonb_each_text", "json_object_keys", "jsonb_object_keys", "json_typeof",
    "jsonb_typeof", "jsonb_set", "jsonb_set_lax", "jsonb_insert", "jsonb_pretty",
    "jsonb_strip_nulls", "json_strip_nulls", "row_to_json", "array_to_json", "jsonb_path_query",
    "jsonb_path_exists", "jsonb_path_match", "jsonb_path_query_array", "jsonb_path_query_first",
    "json_populate_record", "jsonb_populate_record", "json_to_record", "jsonb_to_record",
    "json_to_recordset", "jsonb_to_recordset",
    // arrays and set-returning helpers
    "array_length", "array_append", "array_prepend", "array_cat", "array_position",
    "array_positions", "array_remove", "array_replace", "array_dims", "array_lower",
    "array_upper", "array_ndims", "cardinality", "unnest", "generate_series",
    "generate_subscripts", "array_fill", "trim_array",
    // text search
    "to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery",
    "ts_rank", "ts_rank_cd", "ts_headline", "setweight",
    // network and uuid
    "host", "hostmask", "family", "masklen", "netmask", "network", "broadcast", "abbrev",
    "gen_random_uuid", "uuidv4", "uuidv7",
    // session facts and catalogue look-ups (read-only)
    "current_database", "current_schema", "current_schemas", "current_setting", "version",
    "pg_typeof", "format_type", "num_nonnulls", "num_nulls", "has_table_privilege",
    "has_schema_privilege", "has_database_privilege", "has_column_privilege",
    "has_function_privilege", "has_sequence_privilege", "pg_has_role", "pg_size_pretty",
    "pg_relation_size", "pg_total_relation_size", "pg_table_size", "pg_indexes_size",
    "pg_database_size", "obj_description", "col_description", "shobj_description",
    "pg_get_viewdef", "pg_get_indexdef", "pg_get_constraintdef", "pg_get_expr",
    "pg_get_userbyid", "pg_get_serial_sequence", "pg_table_is_visible", "pg_backend_pid",
    "pg_postmaster_start_time", "pg_is_in_recovery", "pg_current_wal_lsn",
    "pg_encoding_to_char", "to_regclass", "to_regtype", "to_regproc", "currval", "lastval",
    // what psql's describe commands (\d, \df, \l, \sf, ...) call: deparsers and visibility tests
    "getdatabaseencoding", "pg_char_to_encoding", "pg_collation_is_visible",
    "pg_conversion_is_visible", "pg_function_is_visible", "pg_opclass_is_visible",
    "pg_operator_is_visible", "pg_opfamily_is_visible", "pg_statistics_obj_is_visible",
    "pg_ts_config_is_visible", "pg_ts_dict_is_visible", "pg_ts_parser_is_visible",
    "pg_ts_template_is_visible", "pg_type_is_visible", "pg_get_function_arguments",
    "pg_get_function_identity_arguments", "pg_get_function_result", "pg_get_function_sqlbody",
    "pg_get_functiondef", "pg_get_statisticsobjdef", "pg_get_statisticsobjdef_columns",
    "pg_get_statisticsobjdef_expressions", "pg_get_triggerdef", "pg_get_ruledef",
    "pg_get_partkeydef", "pg_get_partition_constraintdef", "pg_relation_is_publishable",
    "pg_tablespace_location", "pg_describe_object",
];

/// Built-in functions that change data in a way that can be undone or is harmless to repeat.
const WRITE: &[&str] = &["nextval", "setval", "pg_notify"];

/// Built-in functions that change session or server settings: the same as `SET`.
const PRIVILEGE: &[&str] = &["set_config", "pg_reload_conf"];

/// Built-in operators: comparisons, arithmetic, string, pattern, JSON, array, range and text
/// search operators. An operator is a function call in disguise, so an unknown one (created
/// with `CREATE OPERATOR`) is treated like an unknown function.
#[rustfmt::skip]
const OPERATORS: &[&str] = &[
    "=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "^", "||", "|/", "||/", "@",
    "&", "|", "#", "~", "<<", ">>", "~~", "!~~", "~~*", "!~~*", "~*", "!~", "!~*", "@>", "<@",
    "&&", "->", "->>", "#>", "#>>", "?", "?|", "?&", "@?", "@@", "@@@", "#-", "<->", "-|-",
    "&<", "&>", "<<|", "|>>", "&<|", "|&>", "~=", "^@", "<<=", ">>=", "BETWEEN", "NOT BETWEEN",
    "BETWEEN SYMMETRIC", "NOT BETWEEN SYMMETRIC",
];

/// The class of calling a function named `parts` (schema-qualified or not), given the
/// configured extra safe functions (matched against the dotted name as written).
pub(crate) fn class_of(parts: &[String], extra_safe: &[String]) -> OpClass {
    let dotted = parts.join(".");
    if extra_safe.contains(&dotted) {
        return OpClass::Read;
    }
    // Only an unqualified or `pg_catalog.` name is a built-in; `myschema.lower` is user code.
    let name = match parts {
        [name] => name.as_str(),
        [schema, name] if schema == "pg_catalog" => name.as_str(),
        _ => return OpClass::Destructive,
    };
    if SAFE.contains(&name) {
        OpClass::Read
    } else if WRITE.contains(&name) {
        OpClass::Write
    } else if PRIVILEGE.contains(&name) {
        OpClass::Privilege
    } else {
        OpClass::Destructive
    }
}

/// Whether an operator named `parts` is a built-in one.
pub(crate) fn operator_is_builtin(parts: &[String]) -> bool {
    match parts {
        [op] => OPERATORS.contains(&op.as_str()),
        [schema, op] if schema == "pg_catalog" => OPERATORS.contains(&op.as_str()),
        _ => false,
    }
}

/// `TABLESAMPLE` methods that ship with PostgreSQL (`system_rows` and `system_time` are
/// contrib's): any other name is a handler function someone installed.
const TABLESAMPLE: &[&str] = &["system", "bernoulli", "system_rows", "system_time"];

/// Whether a `TABLESAMPLE` method named `parts` is a built-in one.
pub(crate) fn tablesample_is_builtin(parts: &[String]) -> bool {
    match parts {
        [m] => TABLESAMPLE.contains(&m.as_str()),
        [schema, m] if schema == "pg_catalog" => TABLESAMPLE.contains(&m.as_str()),
        _ => false,
    }
}

/// Built-in functions that are strict (NULL when an argument is NULL) and never NULL
/// otherwise on non-NULL arguments of ordinary values, so that `lower(email) IS NULL` is as
/// restricting as `email IS NULL`. Not `nullif`, `coalesce`, `concat` and the like, whose
/// NULLs do not follow their arguments'; not `substring(x FROM pattern)`-style regex forms
/// either way (they only add NULLs, which is still a test that depends on the data).
#[rustfmt::skip]
const NULL_FOLLOWS_ARGUMENTS: &[&str] = &[
    "lower", "upper", "initcap", "trim", "btrim", "ltrim", "rtrim", "length", "char_length",
    "character_length", "octet_length", "abs", "date_trunc", "md5", "substr", "substring",
    "replace", "reverse", "left", "right", "lpad", "rpad", "ceil", "ceiling", "floor", "round",
    "trunc", "sign",
];

/// Whether `parts` names a built-in function whose result is NULL exactly when (some) argument
/// is, treated like a built-in operator when deciding whether a value can be NULL.
pub(crate) fn null_follows_arguments(parts: &[String]) -> bool {
    match parts {
        [name] => NULL_FOLLOWS_ARGUMENTS.contains(&name.as_str()),
        [schema, name] if schema == "pg_catalog" => NULL_FOLLOWS_ARGUMENTS.contains(&name.as_str()),
        _ => false,
    }
}
