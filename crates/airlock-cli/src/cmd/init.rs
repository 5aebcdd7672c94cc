//! `airlock init`: a working setup on embedded defaults in one command.

use crate::exit::{fail, INVALID};
use crate::output::Output;
use airlock_config::{Config, EXAMPLE};
use airlock_seal::MasterKey;
use airlock_store::SqliteStore;
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `airlock init`.
#[derive(clap::Args, Debug)]
pub struct InitArgs {}

/// Writes the example configuration and a master key next to it and creates the store.
pub fn run(config_path: &Path, _args: InitArgs, out: &Output) -> anyhow::Result<ExitCode> {
    if config_path.exists() {
        return Err(fail(
            INVALID,
            format!(
                "`{}` already exists; refusing to overwrite it. Use it as it is, or pass `--config OTHER.toml`",
                config_path.display()
            ),
        ));
    }
    if let Some(dir) = config_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(config_path, EXAMPLE)?;
    let config = Config::load(config_path)?;
    let key_path = config.key_path();
    let key_note = if std::env::var(airlock_seal::KEY_ENV).is_ok() {
        format!(
            "master key: taken from {} (no key file written)",
            airlock_seal::KEY_ENV
        )
    } else if key_path.exists() {
        // Keep an existing key: secrets sealed with it would otherwise be lost.
        MasterKey::load(&key_path)?;
        format!("master key: kept existing {}", key_path.display())
    } else {
        MasterKey::generate()?.write_new(&key_path)?;
        format!(
            "master key: {} (mode 0600; back it up, it is not in the store)",
            key_path.display()
        )
    };
    let store = SqliteStore::open(&config.store_path())?;
    if out.json() {
        out.value(&serde_json::json!({
            "config": config_path.display().to_string(),
            "store": store.path().display().to_string(),
            "key_file": key_path.display().to_string(),
        }))?;
    } else {
        outln!("wrote {}", config_path.display())?;
        outln!("{key_note}")?;
        outln!("store: {} (SQLite, WAL)", store.path().display())?;
        outln!()?;
        outln!("next:")?;
        outln!("  airlock identity add alice --kind human")?;
        outln!("  airlock identity add deploy-bot --kind agent --owner alice --purpose \"staging deploys\"")?;
        outln!(
            "  airlock token issue --identity deploy-bot --env staging --allow read,write --ttl 1h"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
