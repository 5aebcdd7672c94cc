//! Inputs: files and directories (ignored files included unless asked otherwise), stdin,
//! archives nested to a bounded depth, and exports.

use crate::engine::{Scanner, StreamOutcome};
use crate::exports;
use crate::finding::{Finding, Origin};
use rayon::prelude::*;
use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Limits that keep archives from exhausting memory or time (archive bombs).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How many archives deep to descend (an archive in a file is depth 1).
    pub max_depth: u32,
    /// Decompressed bytes one top-level archive may expand to, all members and nesting included.
    pub max_archive_bytes: u64,
    /// Members one top-level archive may have, nesting included.
    pub max_entries: u64,
    /// Largest member held in memory: nested zips (which need seeking), office XML, Slack days.
    pub max_in_memory: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 4,
            max_archive_bytes: 4 << 30,
            max_entries: 200_000,
            max_in_memory: 256 << 20,
        }
    }
}

/// How to walk and read inputs.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Skip files that `.gitignore` and friends exclude (default: scan them; `.env` is ignored
    /// in most repositories and is exactly where secrets are).
    pub respect_gitignore: bool,
    /// Archive limits.
    pub limits: Limits,
    /// Worker threads; `None` uses [`default_threads`].
    pub threads: Option<usize>,
}

/// Something that did not stop the scan but that the user should know.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notice {
    /// The input concerned.
    pub file: String,
    /// What happened, lowercase.
    pub message: String,
}

/// The result of a scan.
#[derive(Debug, Default)]
pub struct Report {
    /// Findings, sorted by file, line, column.
    pub findings: Vec<Finding>,
    /// Files (and archive members) read.
    pub files: u64,
    /// Bytes read, decompressed.
    pub bytes: u64,
    /// Files skipped as binary.
    pub binary_skipped: u64,
    /// Non-fatal problems: unreadable files, refused archives.
    pub notices: Vec<Notice>,
}

impl Report {
    fn absorb(&mut self, other: Report) {
        self.findings.extend(other.findings);
        self.files += other.files;
        self.bytes += other.bytes;
        self.binary_skipped += other.binary_skipped;
        self.notices.extend(other.notices);
    }

    fn sort(&mut self) {
        self.findings.sort_by(|a, b| {
            (a.file.as_str(), a.location.as_deref(), a.line, a.column).cmp(&(
                b.file.as_str(),
                b.location.as_deref(),
                b.line,
                b.column,
            ))
        });
    }
}

/// Progress callbacks; both are called from worker threads.
pub trait Progress: Sync {
    /// Total bytes on disk about to be scanned.
    fn start(&self, _total_bytes: u64) {}
    /// `bytes` more on disk are done.
    fn advance(&self, _bytes: u64) {}
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {}

/// A root path that cannot be scanned at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The path does not exist or cannot be read.
    #[error("cannot read `{path}`: {source}")]
    Unreadable {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The thread pool could not start.
    #[error("cannot start worker threads: {0}")]
    Threads(String),
}

struct Job {
    path: PathBuf,
    size: u64,
}

/// Worker threads when none are asked for: every core, and at least 4, because on a cold page
/// cache a thread waiting for the disk leaves its core idle (measured on 2 cores, 1.1 GB cold:
/// 9.5-10.6 s with 4 threads against 12.6-14.5 s with 2; warm runs are equal within noise).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get().max(4))
}

/// Scans files and directories.
pub fn scan_paths(
    scanner: &Scanner,
    paths: &[PathBuf],
    opts: &ScanOptions,
    progress: &dyn Progress,
) -> Result<Report, InputError> {
    let mut jobs = Vec::new();
    let mut report = Report::default();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(|source| InputError::Unreadable {
            path: root.display().to_string(),
            source,
        })?;
        if meta.is_file() {
            jobs.push(Job {
                path: root.clone(),
                size: meta.len(),
            });
            continue;
        }
        let walker = ignore::WalkBuilder::new(root)
            .hidden(false)
            .ignore(opts.respect_gitignore)
            .git_ignore(opts.respect_gitignore)
            .git_global(opts.respect_gitignore)
            .git_exclude(opts.respect_gitignore)
            .parents(opts.respect_gitignore)
            .require_git(false)
            .follow_links(false)
            .build();
        for entry in walker {
            match entry {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    jobs.push(Job {
                        path: e.into_path(),
                        size,
                    });
                }
                Ok(_) => {}
                Err(err) => report.notices.push(Notice {
                    file: root.display().to_string(),
                    message: err.to_string(),
                }),
            }
        }
    }
    // Big files first, so that one large file does not finish alone at the end.
    jobs.sort_by_key(|j| std::cmp::Reverse(j.size));
    progress.start(jobs.iter().map(|j| j.size).sum());
    let slack_users: Mutex<HashMap<PathBuf, Arc<HashMap<String, String>>>> =
        Mutex::new(HashMap::new());
    let run = || {
        // One task per file: rayon's adaptive splitting only splits further what gets stolen,
        // so a chunk of big files at the front would otherwise be scanned by one thread while
        // the others idle (measured: -j2 no faster than -j1).
        jobs.par_iter()
            .with_max_len(1)
            .map(|job| {
                let r = scan_file(scanner, &job.path, job.size, opts, &slack_users);
                progress.advance(job.size);
                r
            })
            .collect::<Vec<Report>>()
    };
    let threads = opts.threads.unwrap_or_else(default_threads);
    let results = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| InputError::Threads(e.to_string()))?
        .install(run);
    for r in results {
        report.absorb(r);
    }
    report.sort();
    Ok(report)
}

/// Scans standard input (or any reader) as one stream named `name`; archives are recognised
/// by their magic bytes.
pub fn scan_reader<R: Read>(
    scanner: &Scanner,
    reader: R,
    name: &str,
    opts: &ScanOptions,
) -> Report {
    let budget = Budget::new(opts.limits);
    let mut ctx = Ctx {
        scanner,
        limits: opts.limits,
        budget: &budget,
        report: Report::default(),
        top: name.to_string(),
    };
    let mut reader = reader;
    ctx.stream(&mut reader, name, 0);
    let mut report = ctx.report;
    report.sort();
    report
}

fn display(path: &Path) -> String {
    let s = path.display().to_string();
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

/// Files up to this size are read whole (one read, no chunking).
const SMALL_FILE: u64 = 1 << 20;

thread_local! {
    static SMALL_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn scan_file(
    scanner: &Scanner,
    path: &Path,
    size: u64,
    opts: &ScanOptions,
    slack_users: &Mutex<HashMap<PathBuf, Arc<HashMap<String, String>>>>,
) -> Report {
    let name = display(path);
    let mut report = Report::default();
    if scanner.path_allowed(&name) {
        return report;
    }
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            report.notices.push(Notice {
                file: name,
                message: format!("cannot open: {e}"),
            });
            return report;
        }
    };
    // A Slack export folder: `<root>/<channel>/<YYYY-MM-DD>.json` next to `<root>/channels.json`.
    if let Some((chan, date)) = exports::is_slack_day_file(&name) {
        let root = path.parent().and_then(Path::parent);
        if let Some(root) =
            root.filter(|r| r.join("channels.json").is_file() || r.join("users.json").is_file())
        {
            let users = slack_users_for(root, slack_users);
            let mut json = Vec::new();
            let limit = opts.limits.max_in_memory;
            if (&mut file).take(limit).read_to_end(&mut json).is_ok() && (json.len() as u64) < limit
            {
                if let Some(f) = exports::scan_slack_day(scanner, &json, &name, chan, date, &users)
                {
                    report.files = 1;
                    report.bytes = json.len() as u64;
                    report.findings = f;
                    return report;
                }
            }
            let _ = file.rewind();
        }
    }
    // Most files are small: read them whole into this thread's buffer with one allocation
    // reused across files, instead of streaming through a fresh chunk buffer.
    if size <= SMALL_FILE {
        let done = SMALL_BUF.with(|cell| {
            let Ok(mut buf) = cell.try_borrow_mut() else {
                return false;
            };
            buf.clear();
            if let Err(e) = (&mut file).take(SMALL_FILE + 1).read_to_end(&mut buf) {
                report.notices.push(Notice {
                    file: name.clone(),
                    message: format!("read error: {e}"),
                });
                return true;
            }
            if buf.len() as u64 > SMALL_FILE
                || Kind::sniff(&buf[..buf.len().min(512)]) != Kind::Text
            {
                return false;
            }
            report.files += 1;
            report.bytes += buf.len() as u64;
            if crate::engine::is_binary(&buf) {
                report.binary_skipped += 1;
            } else {
                report.findings = scanner.scan_bytes(&buf, &origin_for(&name));
            }
            true
        });
        if done {
            return report;
        }
        if file.rewind().is_err() {
            report.notices.push(Notice {
                file: name,
                message: "cannot rewind after sniffing".into(),
            });
            return report;
        }
    }
    let mut head = [0u8; 512];
    let n = read_head(&mut file, &mut head);
    let kind = Kind::sniff(&head[..n]);
    if kind != Kind::Text {
        let budget = Budget::new(opts.limits);
        let mut ctx = Ctx {
            scanner,
            limits: opts.limits,
            budget: &budget,
            report,
            top: name.clone(),
        };
        if kind == Kind::Zip {
            if file.rewind().is_ok() {
                ctx.zip(file, &name, 1);
            }
        } else {
            ctx.stream(&mut Cursor::new(head[..n].to_vec()).chain(file), &name, 0);
        }
        return ctx.report;
    }
    let origin = origin_for(&name);
    match scanner.scan_reader(Cursor::new(&head[..n]).chain(file), &origin, true) {
        Ok(o) => report.add_stream(o),
        Err(e) => report.notices.push(Notice {
            file: name,
            message: format!("read error: {e}"),
        }),
    }
    report
}

fn slack_users_for(
    root: &Path,
    cache: &Mutex<HashMap<PathBuf, Arc<HashMap<String, String>>>>,
) -> Arc<HashMap<String, String>> {
    if let Ok(c) = cache.lock() {
        if let Some(u) = c.get(root) {
            return Arc::clone(u);
        }
    }
    let users = Arc::new(
        std::fs::read(root.join("users.json"))
            .map(|b| exports::slack_users(&b))
            .unwrap_or_default(),
    );
    if let Ok(mut c) = cache.lock() {
        c.insert(root.to_path_buf(), Arc::clone(&users));
    }
    users
}

fn origin_for(name: &str) -> Origin {
    Origin {
        file: name.to_string(),
        location: exports::notion_location(name),
    }
}

impl Report {
    fn add_stream(&mut self, o: StreamOutcome) {
        self.files += 1;
        self.bytes += o.bytes;
        if o.binary {
            self.binary_skipped += 1;
        }
        self.findings.extend(o.findings);
    }
}

fn read_head<R: Read>(r: &mut R, head: &mut [u8]) -> usize {
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    n
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Zip,
    Gzip,
    Tar,
    Text,
}

impl Kind {
    fn sniff(head: &[u8]) -> Kind {
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Kind::Zip
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Kind::Gzip
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Kind::Tar
        } else {
            Kind::Text
        }
    }
}

/// Decompressed bytes and entries left for one top-level archive.
struct Budget {
    bytes: Cell<u64>,
    entries: Cell<u64>,
    exceeded: Cell<bool>,
}

impl Budget {
    fn new(l: Limits) -> Budget {
        Budget {
            bytes: Cell::new(l.max_archive_bytes),
            entries: Cell::new(l.max_entries),
            exceeded: Cell::new(false),
        }
    }
}

/// A reader that fails once the archive's byte budget is spent.
struct Budgeted<'a, R> {
    inner: R,
    budget: &'a Budget,
}

impl<R: Read> Read for Budgeted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget.bytes.get();
        if left == 0 {
            self.budget.exceeded.set(true);
            return Err(io::Error::other("archive size limit reached"));
        }
        let cap = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..cap])?;
        self.budget.bytes.set(left - n as u64);
        Ok(n)
    }
}

struct Ctx<'a> {
    scanner: &'a Scanner,
    limits: Limits,
    budget: &'a Budget,
    report: Report,
    /// The top-level input, named in refusals.
    top: String,
}

impl Ctx<'_> {
    fn refuse_bomb(&mut self) {
        let message = format!(
            "archive expands beyond the limit of {} bytes or {} entries (possible archive bomb); the rest was not scanned",
            self.limits.max_archive_bytes, self.limits.max_entries
        );
        let notice = Notice {
            file: self.top.clone(),
            message,
        };
        if !self.report.notices.contains(&notice) {
            self.report.notices.push(notice);
        }
    }

    fn stopped(&self) -> bool {
        self.budget.exceeded.get()
    }

    fn take_entry(&mut self) -> bool {
        let left = self.budget.entries.get();
        if left == 0 {
            self.budget.exceeded.set(true);
            self.refuse_bomb();
            return false;
        }
        self.budget.entries.set(left - 1);
        true
    }

    fn too_deep(&mut self, name: &str, depth: u32) -> bool {
        if depth > self.limits.max_depth {
            self.report.notices.push(Notice {
                file: name.to_string(),
                message: format!(
                    "archive nested deeper than {} levels; not opened",
                    self.limits.max_depth
                ),
            });
            return true;
        }
        false
    }

    /// Reads everything (within the in-memory limit) for formats that need it whole.
    fn slurp<R: Read>(&mut self, r: R, name: &str) -> Option<Vec<u8>> {
        let limit = self.limits.max_in_memory;
        let mut buf = Vec::new();
        let res = Budgeted {
            inner: r,
            budget: self.budget,
        }
        .take(limit + 1)
        .read_to_end(&mut buf);
        if self.stopped() {
            self.refuse_bomb();
            return None;
        }
        if let Err(e) = res {
            self.report.notices.push(Notice {
                file: name.to_string(),
                message: format!("read error: {e}"),
            });
            return None;
        }
        if buf.len() as u64 > limit {
            self.report.notices.push(Notice {
                file: name.to_string(),
                message: format!("larger than the in-memory limit of {limit} bytes; not scanned"),
            });
            return None;
        }
        Some(buf)
    }

    /// Scans a stream that may itself be an archive.
    fn stream(&mut self, mut r: &mut dyn Read, name: &str, depth: u32) {
        if self.stopped() {
            return;
        }
        let mut head = [0u8; 512];
        let n = read_head(&mut r, &mut head);
        let mut r = Cursor::new(head[..n].to_vec()).chain(r);
        let r: &mut dyn Read = &mut r;
        match Kind::sniff(&head[..n]) {
            Kind::Zip => {
                if self.too_deep(name, depth + 1) {
                    return;
                }
                if let Some(bytes) = self.slurp(r, name) {
                    self.zip(Cursor::new(bytes), name, depth + 1);
                }
            }
            Kind::Gzip => {
                if self.too_deep(name, depth + 1) {
                    return;
                }
                // The decompressed stream keeps the compressed file's name: that is what a
                // person can find on disk.
                self.stream(&mut flate2::read::MultiGzDecoder::new(r), name, depth + 1);
            }
            Kind::Tar => {
                if self.too_deep(name, depth + 1) {
                    return;
                }
                self.tar(r, name, depth + 1);
            }
            Kind::Text => {
                let origin = origin_for(name);
                let res = self.scanner.scan_reader(
                    Budgeted {
                        inner: r,
                        budget: self.budget,
                    },
                    &origin,
                    true,
                );
                if self.stopped() {
                    self.refuse_bomb();
                    return;
                }
                match res {
                    Ok(o) => self.report.add_stream(o),
                    Err(e) => self.report.notices.push(Notice {
                        file: name.to_string(),
                        message: format!("read error: {e}"),
                    }),
                }
            }
        }
    }

    fn tar(&mut self, r: &mut dyn Read, name: &str, depth: u32) {
        let mut archive = tar::Archive::new(r);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => {
                self.report.notices.push(Notice {
                    file: name.to_string(),
                    message: format!("bad tar archive: {e}"),
                });
                return;
            }
        };
        for entry in entries {
            if self.stopped() || !self.take_entry() {
                return;
            }
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    if !self.stopped() {
                        self.report.notices.push(Notice {
                            file: name.to_string(),
                            message: format!("bad tar entry: {e}"),
                        });
                    }
                    return;
                }
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let member = entry
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            let full = format!("{name}!{member}");
            if self.scanner.path_allowed(&full) {
                continue;
            }
            if entry.header().size().unwrap_or(0) > self.budget.bytes.get() {
                self.budget.exceeded.set(true);
                self.refuse_bomb();
                return;
            }
            let mut entry = entry;
            self.stream(&mut entry, &full, depth);
        }
    }

    fn zip<R: Read + Seek>(&mut self, r: R, name: &str, depth: u32) {
        let mut zip = match zip::ZipArchive::new(r) {
            Ok(z) => z,
            Err(e) => {
                self.report.notices.push(Notice {
                    file: name.to_string(),
                    message: format!("bad zip archive: {e}"),
                });
                return;
            }
        };
        let names: Vec<String> = zip.file_names().map(str::to_string).collect();
        let office = names
            .iter()
            .any(|n| n == "[Content_Types].xml" || n == "mimetype" || n == "META-INF/manifest.xml");
        let slack = names
            .iter()
            .any(|n| n == "channels.json" || n == "users.json");
        let users = if slack {
            match zip.by_name("users.json") {
                Ok(f) => self
                    .slurp(f, name)
                    .map(|b| exports::slack_users(&b))
                    .unwrap_or_default(),
                Err(_) => HashMap::new(),
            }
        } else {
            HashMap::new()
        };
        for i in 0..zip.len() {
            if self.stopped() || !self.take_entry() {
                return;
            }
            let file = match zip.by_index(i) {
                Ok(f) => f,
                Err(e) => {
                    self.report.notices.push(Notice {
                        file: name.to_string(),
                        message: format!("bad zip member {i}: {e}"),
                    });
                    continue;
                }
            };
            if file.is_dir() {
                continue;
            }
            let member = file.name().to_string();
            let full = format!("{name}!{member}");
            if self.scanner.path_allowed(&full) {
                continue;
            }
            if file.size() > self.budget.bytes.get() {
                // The declared size alone is over budget: refuse before inflating anything.
                self.budget.exceeded.set(true);
                self.refuse_bomb();
                return;
            }
            if office && (member.ends_with(".xml") || member.ends_with(".rels")) {
                if let Some(xml) = self.slurp(file, &full) {
                    let text = exports::xml_text(&xml);
                    self.report.files += 1;
                    self.report.bytes += xml.len() as u64;
                    let found = self.scanner.scan_bytes(&text, &Origin::file(full));
                    self.report.findings.extend(found);
                }
                continue;
            }
            if slack {
                if let Some((chan, date)) = exports::is_slack_day_file(&member) {
                    let (chan, date) = (chan.to_string(), date.to_string());
                    if let Some(json) = self.slurp(file, &full) {
                        self.report.files += 1;
                        self.report.bytes += json.len() as u64;
                        match exports::scan_slack_day(
                            self.scanner,
                            &json,
                            &full,
                            &chan,
                            &date,
                            &users,
                        ) {
                            Some(f) => self.report.findings.extend(f),
                            None => self
                                .report
                                .findings
                                .extend(self.scanner.scan_bytes(&json, &Origin::file(full))),
                        }
                    }
                    continue;
                }
            }
            let mut file = file;
            self.stream(&mut file, &full, depth);
        }
    }
}
