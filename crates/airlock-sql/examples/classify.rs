//! Prints the classification of the SQL given as the first argument, as JSON:
//! `cargo run -p airlock-sql --example classify -- 'DELETE FROM t'`.

fn main() {
    let sql = std::env::args().nth(1).unwrap_or_default();
    let c = airlock_sql::classify(&sql, &airlock_sql::SqlConfig::default());
    match serde_json::to_string_pretty(&c) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("cannot print: {e}"),
    }
}
