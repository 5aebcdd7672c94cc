//! Materializes the labelled corpus (`tests/corpus`) into a directory, writing
//! `labels-span.tsv` (file, first line, last line, rule) next to it, so that other scanners can
//! be scored on exactly what the test scores; prints `labels.tsv` (file, line, rule).
//!
//! `cargo run -p airlock-scan --example corpus -- OUT_DIR`

use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let Some(out_dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: corpus OUT_DIR");
        std::process::exit(2);
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/files");
    let mut files = Vec::new();
    walk(&src, &mut files)?;
    files.sort();
    let mut labels = String::new();
    let mut spans = String::new();
    for f in files {
        let rel = f.strip_prefix(&src).map_err(std::io::Error::other)?;
        let (text, marks) = airlock_scan::fakes::materialize(&std::fs::read_to_string(&f)?);
        let dest = out_dir.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, text)?;
        for l in marks {
            labels.push_str(&format!("{}\t{}\t{}\n", rel.display(), l.line, l.rule));
            spans.push_str(&format!(
                "{}\t{}\t{}\t{}\n",
                rel.display(),
                l.line,
                l.end_line,
                l.rule
            ));
        }
    }
    std::fs::write(out_dir.join("labels-span.tsv"), &spans)?;
    print!("{labels}");
    Ok(())
}
