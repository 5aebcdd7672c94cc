//! Audit records and their hash chain.
//!
//! Every decision Airlock makes becomes one [`AuditEvent`]. The store numbers it (`seq`) and
//! links it to the previous record: `hash = SHA-256(prev_hash, seq, canonical(event))`. Editing,
//! deleting, inserting or reordering any record breaks the chain at that record, and
//! [`verify_chain`] names the first one that is wrong. The chain is unkeyed so that anyone — a
//! SIEM, an auditor — can verify an export; anchoring the head outside the store (the SIEM's
//! copy) is what makes a wholesale rewrite detectable too.

use airlock_core::{IdentityKind, Outcome};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did something: the audit's answer to "agent or human?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The identity name, or `local:USER` for an operator at the CLI.
    pub id: String,
    /// Human, agent or service.
    pub kind: IdentityKind,
    /// The human who answers for an agent or service.
    pub owner: Option<String>,
    /// The public id of the token the actor presented, never the token.
    pub token_id: Option<String>,
}

impl Actor {
    /// The operator running the CLI on this machine, a human.
    pub fn local_operator() -> Actor {
        let user = ["AIRLOCK_ACTOR", "USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "operator".into());
        Actor {
            id: format!("local:{user}"),
            kind: IdentityKind::Human,
            owner: None,
            token_id: None,
        }
    }

    /// Someone who presented a credential that could not be tied to an identity.
    pub fn unauthenticated() -> Actor {
        Actor {
            id: "unauthenticated".into(),
            // Fail closed: an unknown caller is treated as the least trusted kind.
            kind: IdentityKind::Agent,
            owner: None,
            token_id: None,
        }
    }
}

/// One decision, before the store numbers and chains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it was decided.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Who asked.
    pub actor: Actor,
    /// What was asked, e.g. `identity.add`, `token.issue`, `token.verify`, `secret.set`.
    pub action: String,
    /// What it was asked of: an identity name, a token id, a secret name.
    pub resource: Option<String>,
    /// The environment the resource belongs to, when it has one.
    pub environment: Option<String>,
    /// Allowed, denied, or waiting for approval.
    pub decision: Outcome,
    /// Why, in words a human can act on.
    pub reason: String,
    /// Protocol-specific facts of a gateway decision: class, token environments, deciding
    /// policies, latency, method and path. Ordered, so the chain hash is deterministic.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

/// An event as stored: numbered and chained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// The decision.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The previous record's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

impl AuditRecord {
    /// Numbers and chains an event after the record whose hash is `prev_hash`.
    pub fn seal(seq: u64, prev_hash: &str, event: AuditEvent) -> AuditRecord {
        let hash = chain_hash(seq, prev_hash, &event);
        AuditRecord {
            seq,
            event,
            prev_hash: prev_hash.to_string(),
            hash,
        }
    }
}

fn field(b: &mut Vec<u8>, bytes: &[u8]) {
    // Length-prefixed, so no two different field sequences produce the same byte stream.
    b.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    b.extend_from_slice(bytes);
}

fn opt(b: &mut Vec<u8>, v: &Option<String>) {
    match v {
        None => b.push(0),
        Some(s) => {
            b.push(1);
            field(b, s.as_bytes());
        }
    }
}

/// The chain hash of an event at `seq` following `prev_hash`.
pub fn chain_hash(seq: u64, prev_hash: &str, e: &AuditEvent) -> String {
    // The byte stream is laid out in one buffer and hashed once: feeding SHA-256 forty small
    // pieces cost several times the hashing itself, on every audit record.
    let mut b = Vec::with_capacity(512);
    b.extend_from_slice(b"airlock-audit-v1");
    field(&mut b, prev_hash.as_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&e.time.unix_timestamp_nanos().to_be_bytes());
    field(&mut b, e.actor.id.as_bytes());
    field(&mut b, e.actor.kind.as_str().as_bytes());
    opt(&mut b, &e.actor.owner);
    opt(&mut b, &e.actor.token_id);
    field(&mut b, e.action.as_bytes());
    opt(&mut b, &e.resource);
    opt(&mut b, &e.environment);
    field(&mut b, e.decision.as_str().as_bytes());
    field(&mut b, e.reason.as_bytes());
    // Appended only when present, so records written before details existed keep their hashes.
    if !e.details.is_empty() {
        b.extend_from_slice(b"details");
        b.extend_from_slice(&(e.details.len() as u64).to_be_bytes());
        for (k, v) in &e.details {
            field(&mut b, k.as_bytes());
            field(&mut b, v.as_bytes());
        }
    }
    hex::encode(Sha256::digest(&b))
}

/// The first place a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A record's contents do not match its hash: it was edited.
    #[error("record {seq}: contents do not match its hash (the record was edited)")]
    Edited {
        /// The record.
        seq: u64,
    },
    /// A record does not point at the one before it: something was deleted, inserted or moved.
    #[error("record {seq}: does not follow record {prev_seq} (a record was deleted, inserted or reordered before it)")]
    Unlinked {
        /// The record.
        seq: u64,
        /// The record before it in storage order.
        prev_seq: u64,
    },
    /// Sequence numbers skip: a record was deleted.
    #[error("record {expected} is missing (found {found} where {expected} belongs): a record was deleted")]
    Gap {
        /// The number that should have come next.
        expected: u64,
        /// The number found instead.
        found: u64,
    },
    /// The chain ends before the head the store recorded: records were cut off the end.
    #[error("the log ends at record {last} but the recorded head is record {head}: records were deleted from the end")]
    Truncated {
        /// The last record present.
        last: u64,
        /// The head recorded at the last append.
        head: u64,
    },
    /// Records exist but the head row that the store writes with every append is gone.
    #[error("the recorded head of the log is missing (last record present: {last}): the log was tampered with")]
    HeadMissing {
        /// The last record present.
        last: u64,
    },
    /// The store holds identities but no audit records: the log was emptied.
    #[error("the audit log is empty but the store holds identities that were added with audit records: the log was wiped")]
    Wiped,
    /// There are records after the recorded head.
    #[error("record {seq}: comes after the recorded head (record {head}): records were appended outside Airlock")]
    BeyondHead {
        /// The first record past the head.
        seq: u64,
        /// The recorded head.
        head: u64,
    },
    /// The last record is not the one the store recorded as head.
    #[error("record {seq}: is not the recorded head of the log (the last record was replaced)")]
    HeadMismatch {
        /// The last record.
        seq: u64,
    },
}

/// Checks records in storage order; `head` is the `(seq, hash)` recorded at the last append.
/// Returns the number of records verified.
pub fn verify_chain<I>(records: I, head: Option<(u64, &str)>) -> Result<u64, ChainError>
where
    I: IntoIterator<Item = AuditRecord>,
{
    let mut prev_hash = GENESIS.to_string();
    let mut prev_seq = 0u64;
    let mut count = 0u64;
    for r in records {
        if r.seq != prev_seq + 1 {
            if r.seq > prev_seq + 1 {
                return Err(ChainError::Gap {
                    expected: prev_seq + 1,
                    found: r.seq,
                });
            }
            return Err(ChainError::Unlinked {
                seq: r.seq,
                prev_seq,
            });
        }
        if chain_hash(r.seq, &r.prev_hash, &r.event) != r.hash {
            return Err(ChainError::Edited { seq: r.seq });
        }
        if r.prev_hash != prev_hash {
            return Err(ChainError::Unlinked {
                seq: r.seq,
                prev_seq,
            });
        }
        prev_hash = r.hash;
        prev_seq = r.seq;
        count += 1;
    }
    if let Some((head_seq, head_hash)) = head {
        if prev_seq < head_seq {
            return Err(ChainError::Truncated {
                last: prev_seq,
                head: head_seq,
            });
        }
        if prev_seq > head_seq {
            return Err(ChainError::BeyondHead {
                seq: head_seq + 1,
                head: head_seq,
            });
        }
        if prev_hash != head_hash {
            return Err(ChainError::HeadMismatch { seq: prev_seq });
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(i: u64) -> AuditEvent {
        AuditEvent {
            time: OffsetDateTime::from_unix_timestamp(1_700_000_000 + i as i64).unwrap(),
            actor: Actor {
                id: format!("agent-{i}"),
                kind: IdentityKind::Agent,
                owner: Some("alice".into()),
                token_id: Some(format!("tok_{i:016x}")),
            },
            action: "token.verify".into(),
            resource: Some(format!("r{i}")),
            environment: Some("staging".into()),
            decision: if i.is_multiple_of(2) {
                Outcome::Allow
            } else {
                Outcome::Deny
            },
            reason: format!("reason {i}"),
            details: if i.is_multiple_of(3) {
                BTreeMap::from([("class".to_string(), "read".to_string())])
            } else {
                BTreeMap::new()
            },
        }
    }

    #[test]
    fn chain_hashes_are_stable_across_versions() {
        // Logs written by earlier versions must keep verifying: these are the hashes those
        // versions computed for the same events.
        assert_eq!(
            chain_hash(1, GENESIS, &event(0)),
            "e59e968c61aa8c0a9b85578f8f2d50ca26f1edd46e56a183119a983a63d4e419"
        );
        assert_eq!(
            chain_hash(7, &"ab".repeat(32), &event(1)),
            "4db7b09ce5044e9f66f9d858d07faf0afa41eebbfd59c30c62b0f0b487fef40f"
        );
    }

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 1..=n {
            let prev = out
                .last()
                .map(|r| r.hash.clone())
                .unwrap_or_else(|| GENESIS.into());
            out.push(AuditRecord::seal(i, &prev, event(i)));
        }
        out
    }

    fn head(c: &[AuditRecord]) -> Option<(u64, &str)> {
        c.last().map(|r| (r.seq, r.hash.as_str()))
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify_chain(c.clone(), head(&c)), Ok(5));
    }

    #[test]
    fn cutting_records_off_the_end_is_detected_by_the_head() {
        let c = chain(5);
        let h = (c[4].seq, c[4].hash.clone());
        assert_eq!(
            verify_chain(c[..3].to_vec(), Some((h.0, &h.1))),
            Err(ChainError::Truncated { last: 3, head: 5 })
        );
    }

    proptest! {
        #[test]
        fn editing_any_field_of_any_record_is_named(n in 2u64..20, which in 0usize..20, what in 0u8..5) {
            let mut c = chain(n);
            let i = which % c.len();
            match what {
                0 => c[i].event.reason.push('!'),
                1 => c[i].event.decision = Outcome::NeedsApproval,
                2 => c[i].event.actor.kind = IdentityKind::Human,
                3 => { c[i].event.details.insert("policies".into(), "base-permit".into()); }
                _ => c[i].event.time += time::Duration::nanoseconds(1),
            }
            let h = c.last().map(|r| (r.seq, r.hash.clone())).unwrap();
            prop_assert_eq!(verify_chain(c.clone(), Some((h.0, &h.1))), Err(ChainError::Edited { seq: c[i].seq }));
        }

        #[test]
        fn deleting_a_middle_record_is_named(n in 3u64..20, which in 1usize..19) {
            let mut c = chain(n);
            let i = 1 + which % (c.len() - 2);
            let h = c.last().map(|r| (r.seq, r.hash.clone())).unwrap();
            c.remove(i);
            let err = verify_chain(c, Some((h.0, &h.1))).unwrap_err();
            prop_assert_eq!(err, ChainError::Gap { expected: i as u64 + 1, found: i as u64 + 2 });
        }

        #[test]
        fn swapping_two_records_contents_is_detected_at_the_first(n in 3u64..20, a in 0usize..19, b in 0usize..19) {
            let mut c = chain(n);
            let (a, b) = (a % c.len(), b % c.len());
            prop_assume!(a != b && c[a].event != c[b].event);
            let (ea, eb) = (c[a].event.clone(), c[b].event.clone());
            c[a].event = eb;
            c[b].event = ea;
            let h = c.last().map(|r| (r.seq, r.hash.clone())).unwrap();
            let err = verify_chain(c, Some((h.0, &h.1))).unwrap_err();
            prop_assert_eq!(err, ChainError::Edited { seq: a.min(b) as u64 + 1 });
        }
    }
}
