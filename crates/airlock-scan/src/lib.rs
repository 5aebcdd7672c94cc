//! `airlock scan`: find credentials in everything an agent can read.
//!
//! The pipeline, one way: an input reader ([`inputs`]) turns files, archives and exports into
//! byte streams with an [`Origin`]; the [`Scanner`] runs a keyword prefilter over each stream
//! and the full rule regexes only in windows around keyword hits, confirms candidates with
//! checksums and look-alike filters ([`filters`]), and returns [`Finding`]s whose secrets are
//! already redacted; [`report`] writes them as text, JSON or SARIF, and [`baseline`] filters
//! known ones.

pub mod baseline;
pub mod config;
pub mod decode;
pub mod engine;
pub mod exports;
pub mod fakes;
pub mod filters;
pub mod finding;
pub mod inputs;
pub mod report;
pub mod rules;

pub use engine::{Allowlist, Scanner};
pub use finding::{Finding, Origin};
pub use inputs::{scan_paths, scan_reader, Limits, Notice, Progress, Report, ScanOptions};
