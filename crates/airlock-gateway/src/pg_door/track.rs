//! What the server holds under each prepared-statement name, as far as the door can know.
//!
//! The door decides a Bind by the class of the statement the server will bind. Recording every
//! Parse as it passes would be wrong: the server skips a Parse that follows an error in its
//! batch, and refuses one whose name is taken, so a client could make the door believe a name
//! holds a harmless statement while the server still holds a destructive one. So a Parse is only
//! *pending* until the server's ParseComplete confirms it (in order; an error drops the rest of
//! its batch), and a Bind is decided by the most dangerous statement the name could hold: the
//! confirmed one or any still pending. The exception is a Bind in the same batch as the name's
//! latest Parse: if the Bind runs at all, that Parse ran before it, so its statement is the one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A statement the door classified, as a Bind will need it.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// What it does, for the decision.
    pub classification: Arc<airlock_classify::Classification>,
    /// SHA-256 of its text, binding an approval to exactly this statement.
    pub digest: String,
    /// How a human reads it in an approval queue.
    pub summary: String,
    /// Its command tags.
    pub tags: String,
    /// Whether every statement only reads or changes rows (SELECT, INSERT, UPDATE, DELETE,
    /// MERGE), so nothing of it outlives a transaction that never commits.
    pub transactional: bool,
}

impl Prepared {
    fn class(&self) -> airlock_core::OpClass {
        self.classification.class()
    }
}

#[derive(Debug)]
enum Op {
    Parse {
        batch: u64,
        name: String,
        entry: Arc<Prepared>,
    },
    /// A Close of a statement (`Some(name)`) or of a portal (`None`): both are answered.
    Close { batch: u64, name: Option<String> },
}

impl Op {
    fn batch(&self) -> u64 {
        match self {
            Op::Parse { batch, .. } | Op::Close { batch, .. } => *batch,
        }
    }
}

/// The server answered in a way the door cannot match to what was sent: end the session.
#[derive(Debug, thiserror::Error)]
#[error("the database answered {0} with nothing outstanding; ending the session")]
pub(crate) struct Desync(&'static str);

/// One session's view of the server's prepared statements, and the refusal errors to swap in.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    confirmed: HashMap<String, Arc<Prepared>>,
    pending: VecDeque<Op>,
    /// Batches (ended by Sync, Query, FunctionCall) the client has sent.
    client_batch: u64,
    /// Batches the server has finished (ReadyForQuery).
    server_batch: u64,
    /// Markers of refused messages' stand-ins and the error to show instead.
    refusals: VecDeque<(String, Vec<u8>)>,
    /// The transaction status of the server's last ReadyForQuery: `I`, `T` or `E`.
    status: u8,
    /// Binds and Executes sent in the client's open batch (since its last Sync or Query):
    /// they may change the transaction state before the server reports it.
    in_batch: u32,
    /// Whether the unnamed portal was bound in the open batch (so an Execute of it runs what
    /// that Bind was decided for).
    unnamed_bound: bool,
    /// Whether an extended-protocol message was sent since the last Sync or Query.
    extended_open: bool,
    /// The door's batches may no longer line up with the server's: after an error the server
    /// skips a simple Query sent inside an extended batch, and during COPY FROM STDIN it
    /// ignores Sync, so the door would count a batch the server never ends and match a later
    /// ParseComplete to a Parse the server skipped. From then on a name only ever gets more
    /// dangerous: every Parse counts as soon as it is sent, and no Close or later Parse lowers it.
    unsure: bool,
}

impl Tracker {
    /// A Parse of `name` was forwarded.
    pub fn parse_sent(&mut self, name: &str, entry: Arc<Prepared>) {
        self.extended_open = true;
        if self.unsure {
            self.raise(name, Arc::clone(&entry));
        }
        self.pending.push_back(Op::Parse {
            batch: self.client_batch,
            name: name.to_string(),
            entry,
        });
    }

    /// A Close of statement `name` (or of a portal: None) was forwarded.
    pub fn close_sent(&mut self, name: Option<&str>) {
        self.extended_open = true;
        self.pending.push_back(Op::Close {
            batch: self.client_batch,
            name: name.map(str::to_string),
        });
    }

    /// A Sync was forwarded: it ends the batch.
    pub fn batch_sent(&mut self) {
        self.client_batch += 1;
        self.in_batch = 0;
        self.unnamed_bound = false;
        self.extended_open = false;
    }

    /// A simple Query (or a FunctionCall, or the stand-in for either) was forwarded. It ends the
    /// batch, unless it came inside an unfinished extended batch that failed: then the server
    /// skips it, and the door can no longer tell the batches apart.
    pub fn simple_sent(&mut self) {
        if self.extended_open {
            self.lose_sync();
        }
        self.batch_sent();
    }

    /// A Describe was forwarded (it can fail, and then the rest of the batch is skipped).
    pub fn extended_sent(&mut self) {
        self.extended_open = true;
    }

    /// The server entered COPY FROM STDIN, where it ignores Sync.
    pub fn copy_in(&mut self) {
        self.lose_sync();
    }

    fn lose_sync(&mut self) {
        self.unsure = true;
        let pending: Vec<(String, Arc<Prepared>)> = self
            .pending
            .iter()
            .filter_map(|op| match op {
                Op::Parse { name, entry, .. } => Some((name.clone(), Arc::clone(entry))),
                Op::Close { .. } => None,
            })
            .collect();
        for (name, entry) in pending {
            self.raise(&name, entry);
        }
    }

    /// Remembers `entry` under `name` unless what is there is more dangerous.
    fn raise(&mut self, name: &str, entry: Arc<Prepared>) {
        match self.confirmed.get(name) {
            Some(old) if old.class() > entry.class() => {}
            _ => {
                self.confirmed.insert(name.to_string(), entry);
            }
        }
    }

    /// A Bind into `portal` was forwarded.
    pub fn bind_sent(&mut self, portal: &str) {
        self.extended_open = true;
        self.in_batch += 1;
        self.unnamed_bound = portal.is_empty();
    }

    /// An Execute was forwarded.
    pub fn execute_sent(&mut self) {
        self.extended_open = true;
        self.in_batch += 1;
    }

    /// Whether the session is, for certain, inside an open transaction block right now: the
    /// server's last word was ReadyForQuery `T`, every batch sent since was answered, and
    /// nothing in the open batch could have ended the block.
    pub fn settled_in_block(&self) -> bool {
        self.status == b'T' && self.client_batch == self.server_batch && self.in_batch == 0
    }

    /// Whether the session is idle: outside any transaction block, every batch sent answered,
    /// nothing sent in an unfinished batch. (Status 0: nothing was sent since the login, which
    /// ended with ReadyForQuery `I`.)
    pub fn idle(&self) -> bool {
        matches!(self.status, 0 | b'I')
            && self.client_batch == self.server_batch
            && self.in_batch == 0
            && self.pending.is_empty()
    }

    /// Whether an Execute of `portal` runs what the open batch's latest Bind was decided for.
    pub fn executes_fresh_bind(&self, portal: &str) -> bool {
        portal.is_empty() && self.unnamed_bound
    }

    /// SQL `PREPARE name AS …` was forwarded. Its success is not confirmed message by message,
    /// so the name only ever gets more dangerous: a failed re-PREPARE cannot lower it.
    pub fn sql_prepared(&mut self, name: &str, entry: Arc<Prepared>) {
        self.raise(name, entry);
    }

    /// The statement a Bind of `name` sent now would bind, at its most dangerous.
    pub fn lookup(&self, name: &str) -> Option<Arc<Prepared>> {
        let latest = self.pending.iter().rev().find_map(|op| match op {
            Op::Parse {
                batch,
                name: n,
                entry,
            } if n == name => Some((*batch, entry)),
            _ => None,
        });
        if let Some((batch, entry)) = latest {
            if batch == self.client_batch {
                return Some(Arc::clone(entry));
            }
        }
        let pending = self.pending.iter().filter_map(|op| match op {
            Op::Parse { name: n, entry, .. } if n == name => Some(entry),
            _ => None,
        });
        self.confirmed
            .get(name)
            .into_iter()
            .chain(pending)
            .max_by_key(|e| e.class())
            .cloned()
    }

    /// How many names are remembered or pending.
    pub fn len(&self) -> usize {
        self.confirmed.len() + self.pending.len()
    }

    /// The server sent ParseComplete: the oldest pending Parse happened.
    pub fn parse_complete(&mut self) -> Result<(), Desync> {
        match self.pending.pop_front() {
            Some(Op::Parse { name, entry, .. }) => {
                match self.unsure {
                    true => self.raise(&name, entry),
                    false => {
                        self.confirmed.insert(name, entry);
                    }
                }
                Ok(())
            }
            _ => Err(Desync("ParseComplete")),
        }
    }

    /// The server sent CloseComplete: the oldest pending Close happened.
    pub fn close_complete(&mut self) -> Result<(), Desync> {
        match self.pending.pop_front() {
            Some(Op::Close { name, .. }) => {
                if let Some(name) = name.filter(|_| !self.unsure) {
                    self.confirmed.remove(&name);
                }
                Ok(())
            }
            _ => Err(Desync("CloseComplete")),
        }
    }

    /// The server reported an error: the rest of its current batch is skipped.
    pub fn error(&mut self) {
        self.drop_current_batch();
    }

    /// The server sent ReadyForQuery with transaction `status`: its current batch is over.
    pub fn ready(&mut self, status: u8) {
        self.drop_current_batch();
        self.server_batch += 1;
        self.status = status;
    }

    fn drop_current_batch(&mut self) {
        let current = self.server_batch;
        while self.pending.front().is_some_and(|op| op.batch() == current) {
            self.pending.pop_front();
        }
    }

    /// Remembers the error to show for a refused message's stand-in.
    pub fn refused(&mut self, marker: String, error: Vec<u8>) {
        if self.refusals.len() >= 1024 {
            self.refusals.pop_front();
        }
        self.refusals.push_back((marker, error));
    }

    /// If the server's error `message` is a stand-in's, Airlock's error instead.
    pub fn swap(&mut self, message: &str) -> Option<Vec<u8>> {
        let at = self
            .refusals
            .iter()
            .position(|(marker, _)| message.contains(marker.as_str()))?;
        // Stand-ins before this one were skipped by the server (an earlier error in their batch).
        self.refusals
            .drain(..=at)
            .next_back()
            .map(|(_, bytes)| bytes)
    }

    /// Whether any refusal error is waiting to be swapped in.
    pub fn has_refusals(&self) -> bool {
        !self.refusals.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_classify::{Classification, Operation};
    use airlock_core::OpClass;
    use proptest::prelude::*;

    fn entry(class: OpClass) -> Arc<Prepared> {
        Arc::new(Prepared {
            classification: Arc::new(Classification {
                operations: vec![Operation {
                    action: format!("{class:?}"),
                    class,
                    resource_kind: String::new(),
                    resource_id: None,
                }],
                effective_method: "SQL".into(),
                normalized_path: String::new(),
                notes: Vec::new(),
                persisted_query_miss: false,
                path_refused: false,
            }),
            digest: String::new(),
            summary: String::new(),
            tags: String::new(),
            transactional: false,
        })
    }

    #[test]
    fn only_a_settled_open_block_lets_writes_defer_their_records() {
        let mut t = Tracker::default();
        assert!(!t.settled_in_block(), "a new session is not in a block");
        // BEGIN answered: in a block, nothing outstanding.
        t.batch_sent();
        t.ready(b'T');
        assert!(t.settled_in_block());
        // A Bind earlier in the open batch may be a COMMIT: not settled until it is answered.
        t.bind_sent("");
        assert!(!t.settled_in_block());
        t.batch_sent();
        assert!(!t.settled_in_block(), "Sync sent, not yet answered");
        t.ready(b'T');
        assert!(t.settled_in_block());
        // A failed block or idle: never.
        t.batch_sent();
        t.ready(b'E');
        assert!(!t.settled_in_block());
        t.batch_sent();
        t.ready(b'I');
        assert!(!t.settled_in_block());
    }

    #[test]
    fn shutdown_waits_while_a_batch_or_a_transaction_block_is_open() {
        let mut t = Tracker::default();
        assert!(
            t.idle(),
            "a session that has sent nothing since its login is idle"
        );
        t.parse_sent("", entry(OpClass::Read));
        assert!(!t.idle(), "a Parse without its Sync yet");
        t.bind_sent("");
        t.execute_sent();
        t.batch_sent();
        assert!(!t.idle(), "a batch the server has not answered");
        t.parse_complete().unwrap();
        t.ready(b'T');
        assert!(!t.idle(), "inside a transaction block");
        t.batch_sent();
        t.ready(b'E');
        assert!(!t.idle(), "inside a failed transaction block");
        t.batch_sent();
        t.ready(b'I');
        assert!(t.idle(), "the block ended and every batch was answered");
    }

    #[test]
    fn only_an_execute_of_this_batch_s_unnamed_bind_runs_what_was_decided_with_it() {
        let mut t = Tracker::default();
        t.bind_sent("");
        assert!(t.executes_fresh_bind(""));
        assert!(
            !t.executes_fresh_bind("c"),
            "a named portal may hold a COMMIT bound long ago"
        );
        t.bind_sent("c");
        assert!(
            !t.executes_fresh_bind(""),
            "the latest Bind was not the unnamed one"
        );
        t.batch_sent();
        t.ready(b'T');
        assert!(
            !t.executes_fresh_bind(""),
            "an unnamed portal from an earlier batch may be a COMMIT"
        );
    }

    #[test]
    fn a_skipped_parse_cannot_hide_the_statement_the_server_still_holds() {
        let mut t = Tracker::default();
        // Batch 1: the unnamed statement becomes a DELETE; the server confirms it.
        t.parse_sent("", entry(OpClass::Destructive));
        t.batch_sent();
        t.parse_complete().unwrap();
        t.ready(b'I');
        // Batch 2: an error first, so the server skips the harmless re-Parse.
        t.parse_sent("", entry(OpClass::Read));
        t.batch_sent();
        // Batch 3: Bind "" (sent before the server answered batch 2).
        assert_eq!(t.lookup("").unwrap().class(), OpClass::Destructive);
        t.error();
        t.ready(b'I');
        assert_eq!(t.lookup("").unwrap().class(), OpClass::Destructive);
    }

    #[test]
    fn a_bind_in_the_parse_s_own_batch_uses_that_parse() {
        let mut t = Tracker::default();
        t.parse_sent("", entry(OpClass::Destructive));
        t.batch_sent();
        t.parse_complete().unwrap();
        t.ready(b'I');
        t.parse_sent("", entry(OpClass::Read));
        assert_eq!(t.lookup("").unwrap().class(), OpClass::Read);
    }

    #[test]
    fn an_unexpected_parse_complete_ends_the_session() {
        let mut t = Tracker::default();
        assert!(t.parse_complete().is_err());
        t.close_sent(Some("s1"));
        assert!(t.parse_complete().is_err());
    }

    /// What a client sends in the model below.
    #[derive(Debug, Clone)]
    enum Msg {
        Parse(u8, OpClass, bool),
        Bind(u8, bool),
        Close(u8),
        Sync,
    }

    fn msg() -> impl Strategy<Value = Msg> {
        let class = prop_oneof![
            Just(OpClass::Read),
            Just(OpClass::Write),
            Just(OpClass::Destructive)
        ];
        prop_oneof![
            (0u8..3, class, any::<bool>()).prop_map(|(n, c, f)| Msg::Parse(n, c, f)),
            (0u8..3, any::<bool>()).prop_map(|(n, f)| Msg::Bind(n, f)),
            (0u8..3).prop_map(Msg::Close),
            Just(Msg::Sync),
        ]
    }

    fn name(n: u8) -> String {
        if n == 0 {
            String::new()
        } else {
            format!("s{n}")
        }
    }

    proptest! {
        /// Against a model of PostgreSQL's extended protocol (an error skips to Sync, a Parse
        /// drops the old unnamed statement, a taken name is an error), with the client
        /// pipelining arbitrarily far ahead of the server: whenever the server binds a
        /// statement, the door had decided that Bind with a class at least as dangerous.
        #[test]
        fn the_door_never_underestimates_what_the_server_binds(
            msgs in proptest::collection::vec(msg(), 0..60),
            pace in proptest::collection::vec(any::<bool>(), 0..200),
        ) {
            let mut t = Tracker::default();
            // Sent but not yet processed: the message and, for a Bind, the class decided.
            let mut wire: VecDeque<(Msg, Option<OpClass>)> = VecDeque::new();
            let mut server: HashMap<String, OpClass> = HashMap::new();
            let mut skipping = false;
            let mut to_send = msgs.into_iter();
            let mut pace = pace.into_iter();
            loop {
                let send = pace.next().unwrap_or(false) || wire.is_empty();
                if send {
                    let Some(m) = to_send.next() else {
                        if wire.is_empty() { break } else { continue }
                    };
                    let decided = match &m {
                        Msg::Parse(n, c, _) => { t.parse_sent(&name(*n), entry(*c)); None }
                        Msg::Close(n) => { t.close_sent(Some(&name(*n))); None }
                        Msg::Sync => { t.batch_sent(); None }
                        Msg::Bind(n, _) => Some(t.lookup(&name(*n)).map(|e| e.class()).unwrap_or(OpClass::Destructive)),
                    };
                    wire.push_back((m, decided));
                    continue;
                }
                let Some((m, decided)) = wire.pop_front() else { continue };
                match m {
                    Msg::Sync => { skipping = false; t.ready(b'I'); }
                    _ if skipping => {}
                    Msg::Parse(n, c, fails) => {
                        let n = name(n);
                        if n.is_empty() { server.remove(&n); }
                        if fails || server.contains_key(&n) {
                            skipping = true;
                            t.error();
                        } else {
                            server.insert(n, c);
                            t.parse_complete().unwrap();
                        }
                    }
                    Msg::Close(n) => { server.remove(&name(n)); t.close_complete().unwrap(); }
                    Msg::Bind(n, fails) => {
                        let decided = decided.unwrap_or(OpClass::Destructive);
                        if decided >= OpClass::Destructive {
                            // Refused: the stand-in Parse("") fails on the server.
                            server.remove("");
                            skipping = true;
                            t.error();
                        } else if let Some(actual) = server.get(&name(n)) {
                            prop_assert!(*actual <= decided, "server bound {actual:?}, door decided {decided:?}");
                            if fails { skipping = true; t.error(); }
                        } else {
                            skipping = true;
                            t.error();
                        }
                    }
                }
            }
        }
    }
}
