//! The inventory: every identity and credential with who answers for it, and what each one's
//! worst case is.
//!
//! - [`findings`]: the inventory items (identities, tokens, sealed secrets, unmanaged
//!   credentials imported from `airlock scan`) and what is wrong with each.
//! - [`reach`]: blast radius, the real Cedar policy set evaluated for a credential against every
//!   action the upstreams' rules can produce and every catalogued resource, and sample statements
//!   on every PostgreSQL database.
//! - [`duties`]: separation-of-duties flags derived from blast radius.
//! - [`import`]: reading `airlock scan --json` reports.
//! - [`render`]: Graphviz DOT and Mermaid pictures of a blast radius.
//! - [`compliance`]: the evidence report mapped to SOC 2, PCI DSS, OWASP NHI and NIST CSF.
//!
//! Nothing here writes: the CLI records imports and lifecycle changes through the authority.

pub mod compliance;
pub mod duties;
pub mod findings;
pub mod import;
pub mod reach;
pub mod render;

pub use findings::Severity;
pub use reach::{BlastRadius, Reach};

/// Why an inventory question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] airlock_store::StoreError),
    /// The token, identity or secret asked about does not exist.
    #[error(
        "no token, identity or sealed secret called `{0}`; list them with `airlock inventory`"
    )]
    NotFound(String),
}

/// Every identity's blast radius (worst first) and the separation-of-duties conflicts among
/// them: what `inventory`, `blast-radius --all` and the compliance report share.
pub struct Assessment {
    /// One blast radius per identity, worst first.
    pub radii: Vec<BlastRadius>,
    /// Conflicts, worst first.
    pub conflicts: Vec<duties::Conflict>,
}

/// Evaluates every identity and its duties.
pub fn assess(
    ev: &reach::Evaluator<'_>,
    store: airlock_authority::StoreReader<'_>,
) -> Result<Assessment, InventoryError> {
    let mut facts = duties::Facts {
        agent_readable_unmanaged: store
            .unmanaged()?
            .iter()
            .filter(|u| u.agent_readable)
            .count(),
        ..Default::default()
    };
    for i in ev.identities() {
        if i.kind == airlock_core::IdentityKind::Human && i.enabled && store.has_totp(&i.name)? {
            facts.totp.insert(i.name.to_string());
        }
    }
    let radii = ev.all();
    let conflicts = duties::conflicts(&radii, &facts);
    Ok(Assessment { radii, conflicts })
}
