#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Precision and recall on the labelled corpus (`tests/corpus/files`, labels in
//! `tests/corpus/labels.tsv`): true secrets of every built-in rule, generated at test time
//! from `{{rule:seed}}` markers, among realistic look-alikes (placeholders, doc examples,
//! hashes, UUIDs, git SHAs, base64 images, password hashes, code references).

use airlock_scan::inputs::{NoProgress, ScanOptions};
use airlock_scan::rules::BUILTIN;
use airlock_scan::{scan_paths, Scanner};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn precision_and_recall_are_at_least_095() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let src = root.join("files");
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut from_markers = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let (text, marks) = airlock_scan::fakes::materialize(&std::fs::read_to_string(f).unwrap());
        let dest = tmp.path().join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, text).unwrap();
        for l in marks {
            from_markers.insert((rel.clone(), l.line, l.rule));
        }
    }
    let labels: BTreeSet<(String, u64, String)> = std::fs::read_to_string(root.join("labels.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split('\t');
            (
                it.next().unwrap().to_string(),
                it.next().unwrap().parse().unwrap(),
                it.next().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        labels, from_markers,
        "labels.tsv is out of date with the corpus markers"
    );
    let covered: BTreeSet<&str> = labels.iter().map(|l| l.2.as_str()).collect();
    for r in BUILTIN {
        assert!(
            covered.contains(r.id),
            "corpus has no true secret for rule `{}`",
            r.id
        );
    }

    let scanner = Scanner::with_builtins().unwrap();
    let report = scan_paths(
        &scanner,
        &[tmp.path().to_path_buf()],
        &ScanOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let prefix = format!("{}/", tmp.path().display());
    let found: BTreeMap<(String, u64), String> = report
        .findings
        .iter()
        .map(|f| {
            (
                (
                    f.file.strip_prefix(&prefix).unwrap_or(&f.file).to_string(),
                    f.line,
                ),
                f.rule_id.clone(),
            )
        })
        .collect();
    let wanted: BTreeMap<(String, u64), String> =
        labels.into_iter().map(|(f, l, r)| ((f, l), r)).collect();
    let tp = found.keys().filter(|k| wanted.contains_key(*k)).count();
    let fps: Vec<_> = found
        .iter()
        .filter(|(k, _)| !wanted.contains_key(*k))
        .collect();
    let misses: Vec<_> = wanted
        .iter()
        .filter(|(k, _)| !found.contains_key(*k))
        .collect();
    let wrong_rule: Vec<_> = found
        .iter()
        .filter(|(k, r)| wanted.get(*k).is_some_and(|w| w != *r))
        .collect();
    let precision = tp as f64 / (tp + fps.len()) as f64;
    let recall = tp as f64 / (tp + misses.len()) as f64;
    println!(
        "corpus: {} labels, TP {tp}, FP {}, FN {}, precision {precision:.3}, recall {recall:.3}",
        wanted.len(),
        fps.len(),
        misses.len()
    );
    println!("false positives: {fps:?}\nmisses: {misses:?}\nwrong rule: {wrong_rule:?}");
    assert!(
        precision >= 0.95,
        "precision {precision:.3} < 0.95; false positives: {fps:?}"
    );
    assert!(
        recall >= 0.95,
        "recall {recall:.3} < 0.95; misses: {misses:?}"
    );
    assert!(
        wrong_rule.is_empty(),
        "attributed to the wrong rule: {wrong_rule:?}"
    );
}
