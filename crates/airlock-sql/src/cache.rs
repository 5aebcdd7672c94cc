//! A bounded cache of classifications keyed by the exact query text.
//!
//! Safe because classification is a pure function of the text and the configuration, and the
//! configuration is fixed for a [`Classifier`]'s lifetime. Agents repeat the same queries (an
//! ORM, a polling loop), so most lookups hit and skip the parse.

use crate::{classify, SqlClassification, SqlConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Hit and miss counts of a [`Classifier`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that classified the text.
    pub misses: u64,
    /// Entries held now.
    pub len: usize,
}

/// A classifier with a bounded least-recently-used cache; `Send + Sync`, shared by connections.
#[derive(Debug)]
pub struct Classifier {
    cfg: SqlConfig,
    capacity: usize,
    /// A std `Mutex`, not an async one: no `.await` happens while it is held, and the critical
    /// sections are a hash lookup or insert (the classification itself runs outside the lock).
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    /// Text -> (classification, last-use tick).
    map: HashMap<String, (Arc<SqlClassification>, u64)>,
    tick: u64,
    hits: u64,
    misses: u64,
}

impl Classifier {
    /// A classifier holding at most `capacity` classifications (0 disables caching).
    pub fn new(cfg: SqlConfig, capacity: usize) -> Classifier {
        Classifier {
            cfg,
            capacity,
            inner: Mutex::new(Lru::default()),
        }
    }

    /// The configuration every classification uses.
    pub fn config(&self) -> &SqlConfig {
        &self.cfg
    }

    /// Classifies `sql`, from the cache when the same text was classified before.
    pub fn classify(&self, sql: &str) -> Arc<SqlClassification> {
        {
            let mut lru = self.lock();
            lru.tick += 1;
            let tick = lru.tick;
            if let Some((c, used)) = lru.map.get_mut(sql) {
                *used = tick;
                let c = Arc::clone(c);
                lru.hits += 1;
                return c;
            }
            lru.misses += 1;
        }
        let c = Arc::new(classify(sql, &self.cfg));
        if self.capacity == 0 {
            return c;
        }
        let mut lru = self.lock();
        if lru.map.len() >= self.capacity && !lru.map.contains_key(sql) {
            // Evict the least recently used entry. A linear scan: eviction only happens on a miss,
            // which already paid for a parse that costs far more than the scan.
            let oldest = lru
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                lru.map.remove(&k);
            }
        }
        let tick = lru.tick;
        lru.map.insert(sql.to_string(), (Arc::clone(&c), tick));
        c
    }

    /// Hit and miss counts so far, and the number of entries held.
    pub fn stats(&self) -> CacheStats {
        let lru = self.lock();
        CacheStats {
            hits: lru.hits,
            misses: lru.misses,
            len: lru.map.len(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // A poisoned lock only means another thread panicked while holding it; the map is still
        // a valid cache of pure results, so keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
