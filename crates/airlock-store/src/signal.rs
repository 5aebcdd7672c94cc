//! A cheap cross-process "auth data changed" signal beside the SQLite file.
//!
//! Every token check asks the store whether identities, tokens or the catalog changed since the
//! verification cache was filled (`auth_epoch`, bumped by triggers). Asking SQLite costs a read
//! transaction (shared-memory locks, a `fcntl`, a B-tree lookup) on every request. Instead, every
//! process that commits a change to `auth_epoch` through this store writes the new epoch into a
//! small file next to the database *after* the commit, and readers compare 8 bytes read with
//! `pread` against what they saw last; only when those bytes change do they read SQLite.
//!
//! Why this keeps revocation immediate: the signal is written after the commit, so a reader that
//! sees the new signal and then reads SQLite sees the committed change; a reader that still sees
//! the old signal is ordered before the revocation finished (the CLI reports success only after
//! the signal is written). What it does not see at once: a change committed by something other
//! than this store (a hand edit with `sqlite3`), or a process killed between its commit and its
//! signal. For those, readers also read SQLite at least every [`BACKSTOP`], so the window is
//! bounded. A signal file that cannot be read falls back to reading SQLite every time.
//!
//! Reading the file is itself a system call on every check, so a reader that read it less than
//! [`GLANCE`] ago trusts that reading. Every publish then waits [`SETTLE`] (twice the glance)
//! before returning, so a writer still reports success only once every reader's next check reads
//! the file afresh: a check that starts after the publish returned trusts only a reading taken
//! after the publish was written. The cost moves from every request (one `pread`) to every
//! change of identities or tokens (2 ms).
//!
//! Every process must find the same file: it is named from the database's canonical path (a
//! symlinked store and its target share one signal), a reader reopens it when the file at that
//! path is no longer the one it holds (deleted, restored), and a writer that could not publish
//! waits out [`BACKSTOP`] before reporting success, so that its change is in force when it does.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest a reader trusts an unchanged signal before reading SQLite anyway.
pub const BACKSTOP: Duration = Duration::from_millis(100);

/// How long a reader trusts its last reading of the signal file without reading it again.
pub const GLANCE: Duration = Duration::from_millis(1);

/// How long a publish waits after writing: longer than [`GLANCE`], so that no reading taken
/// before the write is trusted by a check that starts after the publish returns.
pub const SETTLE: Duration = Duration::from_millis(2);

/// The signal file of the store at `db`: `<db>-epoch` beside SQLite's own `-wal` and `-shm`,
/// named from the canonical path so that every way of naming the store finds the same file.
pub fn path_for(db: &Path) -> PathBuf {
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let mut p = db.into_os_string();
    p.push("-epoch");
    PathBuf::from(p)
}

fn open_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// Device and inode: which file a handle or a path is.
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The signal's bytes when SQLite was last read.
    signal: u64,
    /// The epoch SQLite reported then.
    epoch: u64,
    /// When SQLite was last read.
    at: Instant,
}

#[derive(Debug)]
struct State {
    file: File,
    seen: Option<Seen>,
    /// When the signal file was last read and matched `seen` (taken before the read).
    glanced: Option<Instant>,
}

/// One process's handle on the signal file.
#[derive(Debug)]
pub struct Signal {
    path: PathBuf,
    state: Mutex<State>,
}

impl Signal {
    /// Opens (creating, mode 0600) the signal file for the store at `db`; None when it cannot be
    /// opened, in which case callers read SQLite every time.
    pub fn open(db: &Path) -> Option<Signal> {
        let path = path_for(db);
        match open_file(&path) {
            Ok(file) => Some(Signal {
                path,
                state: Mutex::new(State {
                    file,
                    seen: None,
                    glanced: None,
                }),
            }),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open the change signal; token checks will read the store every time");
                None
            }
        }
    }

    /// The signal's current value; None when it cannot be read (the caller then reads SQLite).
    fn read(file: &File) -> Option<u64> {
        let mut b = [0u8; 8];
        match file.read_at(&mut b, 0) {
            Ok(8) => Some(u64::from_le_bytes(b)),
            // A file nobody has written yet: a distinct value that the first publish changes.
            Ok(0) => Some(u64::MAX),
            // A short read (torn by a concurrent write) or an error: do not trust it.
            _ => None,
        }
    }

    /// Announces that `epoch` was committed. Called after the commit, never before; returns
    /// after [`SETTLE`], once no reader trusts a reading older than the write. False when it
    /// could not be written: readers then see the change only through the backstop.
    pub fn publish(&self, epoch: u64) -> bool {
        let written = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            self.reopen_if_replaced(&mut st);
            // This process's own readers must not wait out their glance either.
            st.glanced = None;
            st.file.write_all_at(&epoch.to_le_bytes(), 0)
        };
        match written {
            Ok(()) => {
                std::thread::sleep(SETTLE);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the change signal");
                false
            }
        }
    }

    /// Reopens the signal when the file at its path is not the one held (deleted, replaced).
    fn reopen_if_replaced(&self, st: &mut State) {
        let held = st.file.metadata().map(|m| identity(&m)).ok();
        let now = std::fs::metadata(&self.path).map(|m| identity(&m)).ok();
        if held != now || now.is_none() {
            match open_file(&self.path) {
                Ok(f) => {
                    st.file = f;
                    st.seen = None;
                    st.glanced = None;
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot reopen the change signal");
                }
            }
        }
    }

    /// The current epoch: from what was seen last while the signal is unchanged and younger than
    /// [`BACKSTOP`], otherwise from `read_store` (which reads SQLite).
    pub fn epoch<E>(&self, read_store: impl FnOnce() -> Result<u64, E>) -> Result<u64, E> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Taken under the lock and before any read: a reading is never credited with a time
        // later than the moment it was taken.
        let now = Instant::now();
        if let (Some(s), Some(g)) = (st.seen, st.glanced) {
            if now.duration_since(g) < GLANCE && now.duration_since(s.at) < BACKSTOP {
                return Ok(s.epoch);
            }
        }
        let signal = Self::read(&st.file);
        if let (Some(s), Some(v)) = (st.seen, signal) {
            if s.signal == v && now.duration_since(s.at) < BACKSTOP {
                st.glanced = Some(now);
                return Ok(s.epoch);
            }
        }
        st.glanced = None;
        // Not answered from the signal: a moment to check it is still the file others write.
        self.reopen_if_replaced(&mut st);
        let signal = Self::read(&st.file);
        // Read the signal before SQLite: a change published between the two reads is then
        // either in what SQLite returns or makes the next signal read differ.
        let epoch = read_store()?;
        st.seen = signal.map(|signal| Seen {
            signal,
            epoch,
            at: now,
        });
        // The file was read at `now` too (just above), so this reading may be glanced at.
        st.glanced = st.seen.map(|_| now);
        Ok(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn fresh() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        (dir, db)
    }

    #[test]
    fn an_unchanged_signal_answers_without_reading_the_store() {
        let (_d, db) = fresh();
        let s = Signal::open(&db).unwrap();
        let reads = Cell::new(0);
        let store = || -> Result<u64, ()> {
            reads.set(reads.get() + 1);
            Ok(7)
        };
        assert_eq!(s.epoch(store), Ok(7));
        assert_eq!(s.epoch(store), Ok(7));
        assert_eq!(s.epoch(store), Ok(7));
        assert_eq!(reads.get(), 1);
    }

    #[test]
    fn a_publish_by_another_handle_makes_the_next_check_read_the_store() {
        let (_d, db) = fresh();
        let reader = Signal::open(&db).unwrap();
        let writer = Signal::open(&db).unwrap();
        assert_eq!(reader.epoch(|| Ok::<_, ()>(1)), Ok(1));
        writer.publish(2);
        assert_eq!(reader.epoch(|| Ok::<_, ()>(2)), Ok(2));
        // And the new value is then trusted.
        assert_eq!(reader.epoch(|| Err::<u64, ()>(())), Ok(2));
    }

    #[test]
    fn a_publish_through_the_same_handle_is_seen_by_its_next_check() {
        // The gateway process revokes (console) and checks through one store.
        let (_d, db) = fresh();
        let s = Signal::open(&db).unwrap();
        assert_eq!(s.epoch(|| Ok::<_, ()>(1)), Ok(1));
        s.publish(2);
        assert_eq!(s.epoch(|| Ok::<_, ()>(2)), Ok(2));
    }

    #[test]
    fn a_publish_returns_only_after_every_earlier_reading_has_expired() {
        let (_d, db) = fresh();
        let writer = Signal::open(&db).unwrap();
        let started = Instant::now();
        writer.publish(1);
        assert!(started.elapsed() >= SETTLE);
        assert!(SETTLE > GLANCE);
    }

    #[test]
    fn a_stale_signal_is_not_trusted_past_the_backstop() {
        let (_d, db) = fresh();
        let s = Signal::open(&db).unwrap();
        assert_eq!(s.epoch(|| Ok::<_, ()>(1)), Ok(1));
        std::thread::sleep(BACKSTOP + Duration::from_millis(20));
        // A hand edit bumped the epoch without publishing: caught by the backstop.
        assert_eq!(s.epoch(|| Ok::<_, ()>(5)), Ok(5));
    }

    #[test]
    fn a_deleted_and_recreated_signal_is_followed_within_the_backstop() {
        let (_d, db) = fresh();
        let reader = Signal::open(&db).unwrap();
        assert_eq!(reader.epoch(|| Ok::<_, ()>(1)), Ok(1));
        std::fs::remove_file(path_for(&db)).unwrap();
        let writer = Signal::open(&db).unwrap();
        std::thread::sleep(BACKSTOP + Duration::from_millis(20));
        assert_eq!(reader.epoch(|| Ok::<_, ()>(2)), Ok(2));
        // From then on the reader follows the new file at once.
        writer.publish(3);
        assert_eq!(reader.epoch(|| Ok::<_, ()>(3)), Ok(3));
    }

    #[test]
    fn a_symlinked_store_shares_the_signal_of_its_target() {
        let (d, db) = fresh();
        std::fs::write(&db, b"").unwrap();
        let link = d.path().join("link.db");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        assert_eq!(path_for(&link), path_for(&db));
    }

    #[test]
    fn store_errors_are_passed_on_and_not_remembered() {
        let (_d, db) = fresh();
        let s = Signal::open(&db).unwrap();
        assert_eq!(s.epoch(|| Err::<u64, &str>("down")), Err("down"));
        assert_eq!(s.epoch(|| Ok::<_, &str>(3)), Ok(3));
    }
}
