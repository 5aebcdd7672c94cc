//! Loading what every command needs: configuration, store, authority, master key.

use crate::exit::{fail, ENVIRONMENT};
use airlock_authority::Authority;
use airlock_config::Config;
use airlock_seal::MasterKey;
use airlock_store::SqliteStore;
use anyhow::Context as _;
use std::path::Path;
use std::sync::Arc;

/// A loaded configuration and the authority over its store.
pub struct Ctx {
    /// The authority.
    pub authority: Authority,
}

impl Ctx {
    /// Loads the configuration at `path` and opens its store.
    pub fn load(path: &Path) -> anyhow::Result<Ctx> {
        require_config(path)?;
        let config = Config::load(path)?;
        let store_path = config.store_path();
        let store = SqliteStore::open_existing(&store_path)
            .with_context(|| format!("opening the store named in `{}`", path.display()))?;
        Ok(Ctx {
            authority: Authority::new(Arc::new(store), config, Arc::new(airlock_core::SystemClock)),
        })
    }

    /// Loads the master key named by the configuration (or `AIRLOCK_MASTER_KEY`).
    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        Ok(MasterKey::load(&self.authority.config().key_path())?)
    }
}

/// Refuses a configuration path with no file behind it, saying how to make one.
pub fn require_config(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    Err(fail(
        ENVIRONMENT,
        format!(
            "no configuration at `{}`; run `airlock init` here, or pass `--config PATH` (or set AIRLOCK_CONFIG)",
            path.display()
        ),
    ))
}
