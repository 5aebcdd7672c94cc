//! A bounded cache of classifications keyed by the exact query text, and by its normal form
//! with literals replaced by parameters.
//!
//! Safe because classification is a pure function of the text and the configuration, and the
//! configuration is fixed for a [`Classifier`]'s lifetime. Agents repeat the same queries (an
//! ORM, a polling loop), so most lookups hit and skip the parse. With the simple query
//! protocol every value is inlined and almost every text is new; those texts share an entry
//! under their normal form (see `normalize` for why that never under-classifies).

use crate::normalize::normal_form;
use crate::{classify, parser, SqlClassification, SqlConfig, UNCLASSIFIABLE};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Hit and miss counts of a [`Classifier`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache (by exact text or by normal form).
    pub hits: u64,
    /// Of the hits, those answered by the normal form (the text itself was new).
    pub normalized_hits: u64,
    /// Lookups that classified the text.
    pub misses: u64,
    /// Exact-text entries held now.
    pub len: usize,
    /// Normal-form entries held now (including normal forms known not to be shareable).
    pub normalized_len: usize,
}

/// A classifier with a bounded least-recently-used cache; `Send + Sync`, shared by connections.
#[derive(Debug)]
pub struct Classifier {
    cfg: SqlConfig,
    capacity: usize,
    /// Longest text looked up by its normal form: at most `max_bytes` (a longer text is
    /// destructive by policy, not by shape) and short enough that the parser takes the same
    /// path for every text of one normal form (see `parser::SHORT`).
    normalize_up_to: usize,
    /// A std `Mutex`, not an async one: no `.await` happens while it is held, and the critical
    /// sections are a hash lookup or insert (the classification itself runs outside the lock).
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    exact: Bounded<Arc<SqlClassification>>,
    /// Normal form and literal kinds -> the classification shared by every text of that form, or `None` when the
    /// form classified differently from the text it came from (`LIKE $1` vs `LIKE 'abc'`, or a
    /// form that does not parse): its texts are classified one by one, and the form is not
    /// classified again.
    normalized: Bounded<Option<Arc<SqlClassification>>>,
    tick: u64,
    hits: u64,
    normalized_hits: u64,
    misses: u64,
}

/// Text -> (value, last-use tick), bounded by evicting the least recently used entry.
#[derive(Debug)]
struct Bounded<V> {
    map: HashMap<String, (V, u64)>,
}

impl<V> Default for Bounded<V> {
    fn default() -> Self {
        Bounded {
            map: HashMap::new(),
        }
    }
}

impl<V: Clone> Bounded<V> {
    fn get(&mut self, key: &str, tick: u64) -> Option<V> {
        let (v, used) = self.map.get_mut(key)?;
        *used = tick;
        Some(v.clone())
    }

    fn insert(&mut self, key: String, v: V, tick: u64, capacity: usize) {
        if self.map.len() >= capacity && !self.map.contains_key(&key) {
            // Evict the least recently used entry. A linear scan: eviction only happens on a
            // miss, which already paid for a parse that costs far more than the scan.
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.map.remove(&k);
            }
        }
        self.map.insert(key, (v, tick));
    }
}

impl Classifier {
    /// A classifier holding at most `capacity` classifications (0 disables caching) by exact
    /// text, and as many by normal form.
    pub fn new(cfg: SqlConfig, capacity: usize) -> Classifier {
        let normalize_up_to = cfg.max_bytes.min(parser::SHORT);
        Classifier {
            cfg,
            capacity,
            normalize_up_to,
            inner: Mutex::new(Lru::default()),
        }
    }

    /// The same classifier caching by exact text only (for comparison and as a kill switch).
    pub fn exact_only(mut self) -> Classifier {
        self.normalize_up_to = 0;
        self
    }

    /// The configuration every classification uses.
    pub fn config(&self) -> &SqlConfig {
        &self.cfg
    }

    /// Classifies `sql`, from the cache when the same text, or a text differing from it only
    /// in literal constants, was classified before.
    pub fn classify(&self, sql: &str) -> Arc<SqlClassification> {
        let tick = {
            let mut lru = self.lock();
            lru.tick += 1;
            let tick = lru.tick;
            if let Some(c) = lru.exact.get(sql, tick) {
                lru.hits += 1;
                return c;
            }
            tick
        };
        // Normalised outside the lock: it is a pass over the text.
        let form = (self.capacity > 0 && sql.len() <= self.normalize_up_to)
            .then(|| normal_form(sql))
            .flatten();
        let mut known_unshareable = false;
        {
            let mut lru = self.lock();
            if let Some(form) = &form {
                match lru.normalized.get(&form.key, tick) {
                    Some(Some(c)) => {
                        lru.hits += 1;
                        lru.normalized_hits += 1;
                        return c;
                    }
                    Some(None) => known_unshareable = true,
                    None => {}
                }
            }
            lru.misses += 1;
        }
        let c = Arc::new(classify(sql, &self.cfg));
        if self.capacity == 0 {
            return c;
        }
        // A text that does not classify says nothing about its form: leave the form for the
        // next text rather than classify it for nothing.
        let shared = form
            .filter(|_| !known_unshareable && classifiable(&c))
            .map(|form| {
                let same = shareable(&c, &classify(form.text(), &self.cfg));
                (form.key, same.then(|| Arc::clone(&c)))
            });
        let mut lru = self.lock();
        let tick = lru.tick;
        lru.exact
            .insert(sql.to_string(), Arc::clone(&c), tick, self.capacity);
        if let Some((form, entry)) = shared {
            lru.normalized.insert(form, entry, tick, self.capacity);
        }
        c
    }

    /// Hit and miss counts so far, and the number of entries held.
    pub fn stats(&self) -> CacheStats {
        let lru = self.lock();
        CacheStats {
            hits: lru.hits,
            normalized_hits: lru.normalized_hits,
            misses: lru.misses,
            len: lru.exact.map.len(),
            normalized_len: lru.normalized.map.len(),
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

/// Whether the classification `text` of a text may stand for every text of its normal form,
/// whose classification is `form`: they agree on everything but fingerprints (which ignore
/// literals anyway), notes included, since a note can say why a text is more dangerous than its
/// class shows (`EXPLAIN DELETE … LIKE '%'` is a read, but its DELETE is unrestricted), and
/// neither is unclassifiable (whether a text parses can depend on a literal's value:
/// `CONNECTION LIMIT 99999999999` does not, `CONNECTION LIMIT 5` does and is privilege, above
/// the destructive of an unparseable text).
fn shareable(text: &SqlClassification, form: &SqlClassification) -> bool {
    classifiable(text)
        && text.statements.len() == form.statements.len()
        && text.statements.iter().zip(&form.statements).all(|(a, b)| {
            a.class == b.class
                && a.operations == b.operations
                && a.tag == b.tag
                && a.notes == b.notes
                && a.prepared == b.prepared
                && a.executes == b.executes
        })
}

/// Whether every statement was understood (none is the fail-closed unclassifiable statement).
fn classifiable(c: &SqlClassification) -> bool {
    c.statements.iter().all(|s| s.tag != UNCLASSIFIABLE)
}
