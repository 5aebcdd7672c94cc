#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Each input kind with a planted secret, found at the right location; archive bombs refused.

use airlock_scan::fakes::fake;
use airlock_scan::inputs::{NoProgress, ScanOptions};
use airlock_scan::{scan_paths, scan_reader, Limits, Report, Scanner};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

fn scanner() -> Scanner {
    Scanner::with_builtins().unwrap()
}

fn scan(paths: &[PathBuf], opts: &ScanOptions) -> Report {
    scan_paths(&scanner(), paths, opts, &NoProgress).unwrap()
}

fn gh(seed: u64) -> String {
    fake("github-token", seed).unwrap()
}

fn zip_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn tar_gz_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, *data).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap()
}

fn write(dir: &Path, rel: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    p
}

fn one(report: &Report) -> &airlock_scan::Finding {
    assert_eq!(
        report.findings.len(),
        1,
        "{:#?} {:?}",
        report.findings,
        report.notices
    );
    &report.findings[0]
}

#[test]
fn directory_scan_includes_gitignored_files_unless_asked() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), ".gitignore", b".env\n");
    write(
        d.path(),
        ".env",
        format!("A=1\nB=2\nGITHUB_TOKEN={}\n", gh(1)).as_bytes(),
    );
    write(
        d.path(),
        "src/app.py",
        format!("{}\nkey = \"{}\"\n", "x = 1\n".repeat(8), gh(2)).as_bytes(),
    );
    let r = scan(&[d.path().to_path_buf()], &ScanOptions::default());
    let got: Vec<_> = r
        .findings
        .iter()
        .map(|f| {
            (
                Path::new(&f.file).file_name().unwrap().to_owned(),
                f.line,
                f.column,
            )
        })
        .collect();
    assert_eq!(got.len(), 2, "{:?}", r.findings);
    assert!(got.contains(&(".env".into(), 3, 14)), "{got:?}");
    assert!(got.contains(&("app.py".into(), 10, 8)), "{got:?}");

    let opts = ScanOptions {
        respect_gitignore: true,
        ..ScanOptions::default()
    };
    let r = scan(&[d.path().to_path_buf()], &opts);
    assert_eq!(r.findings.len(), 1);
    assert!(r.findings[0].file.ends_with("app.py"));
}

#[test]
fn zip_and_tar_gz_members_are_named_with_their_archive() {
    let d = tempfile::tempdir().unwrap();
    let text = format!("# settings\ntoken: {}\n", gh(3));
    write(
        d.path(),
        "bundle.zip",
        &zip_bytes(&[("config/settings.yml", text.as_bytes())]),
    );
    write(
        d.path(),
        "bundle.tar.gz",
        &tar_gz_bytes(&[("etc/app.conf", text.as_bytes())]),
    );
    let r = scan(&[d.path().to_path_buf()], &ScanOptions::default());
    assert_eq!(r.findings.len(), 2, "{:#?}", r.findings);
    let root = format!("{}/", d.path().display());
    let files: Vec<_> = r
        .findings
        .iter()
        .map(|f| {
            (
                f.file.strip_prefix(&root).unwrap().to_string(),
                f.line,
                f.column,
            )
        })
        .collect();
    assert!(
        files.contains(&("bundle.zip!config/settings.yml".into(), 2, 8)),
        "{files:?}"
    );
    assert!(
        files.contains(&("bundle.tar.gz!etc/app.conf".into(), 2, 8)),
        "{files:?}"
    );
}

#[test]
fn nested_archives_are_opened_to_the_depth_limit() {
    let d = tempfile::tempdir().unwrap();
    let inner = zip_bytes(&[(
        "inner/.env",
        format!("X=1\nSTRIPE={}\n", fake("stripe-key", 4).unwrap()).as_bytes(),
    )]);
    let outer = tar_gz_bytes(&[("release/bundle.zip", &inner)]);
    let p = write(d.path(), "outer.tgz", &outer);
    let r = scan(std::slice::from_ref(&p), &ScanOptions::default());
    let f = one(&r);
    assert!(
        f.file.ends_with("outer.tgz!release/bundle.zip!inner/.env"),
        "{}",
        f.file
    );
    assert_eq!((f.line, f.rule_id.as_str()), (2, "stripe-key"));

    let opts = ScanOptions {
        limits: Limits {
            max_depth: 1,
            ..Limits::default()
        },
        ..ScanOptions::default()
    };
    let r = scan(&[p], &opts);
    assert!(r.findings.is_empty());
    assert!(
        r.notices
            .iter()
            .any(|n| n.message.contains("nested deeper")),
        "{:?}",
        r.notices
    );
}

fn slack_members(secret: &str) -> Vec<(String, Vec<u8>)> {
    let day = serde_json::json!([
        {"type": "message", "user": "U01", "text": "morning", "ts": "1777100000.000100"},
        {"type": "message", "user": "U02", "ts": "1777100060.000200",
         "text": format!("here is the deploy key\n{secret}"), "edited": {"user": "U02", "ts": "1777100070.000000"}},
        {"type": "message", "user": "U01", "ts": "1777100100.000300", "text": "see file",
         "files": [{"name": "notes.txt", "preview": format!("webhook: {}", fake("slack-webhook", 5).unwrap())}]},
    ]);
    vec![
        (
            "channels.json".into(),
            br#"[{"id":"C01","name":"general"}]"#.to_vec(),
        ),
        (
            "users.json".into(),
            br#"[{"id":"U01","name":"alice"},{"id":"U02","name":"bob"}]"#.to_vec(),
        ),
        (
            "general/2026-04-25.json".into(),
            serde_json::to_vec_pretty(&day).unwrap(),
        ),
    ]
}

fn check_slack(r: &Report) {
    assert_eq!(r.findings.len(), 2, "{:#?}", r.findings);
    let token = r
        .findings
        .iter()
        .find(|f| f.rule_id == "github-token")
        .unwrap();
    assert_eq!(
        token.location.as_deref(),
        Some("#general 2026-04-25 ts=1777100060.000200 user=U02 (bob)")
    );
    assert_eq!((token.line, token.column), (2, 1));
    let hook = r
        .findings
        .iter()
        .find(|f| f.rule_id == "slack-webhook")
        .unwrap();
    assert_eq!(
        hook.location.as_deref(),
        Some("#general 2026-04-25 ts=1777100100.000300 user=U01 (alice) files[0].preview")
    );
}

#[test]
fn slack_export_zip_and_folder() {
    let d = tempfile::tempdir().unwrap();
    let members = slack_members(&gh(6));
    let refs: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let p = write(d.path(), "slack.zip", &zip_bytes(&refs));
    check_slack(&scan(&[p], &ScanOptions::default()));

    let folder = d.path().join("slack-export");
    for (n, b) in &members {
        write(&folder, n, b);
    }
    check_slack(&scan(&[folder], &ScanOptions::default()));
}

#[test]
fn notion_export_reports_page_titles() {
    let d = tempfile::tempdir().unwrap();
    let md = format!(
        "# API keys\n\nWe use these.\n\n- prod: `{}`\n",
        fake("openai-api-key", 7).unwrap()
    );
    let csv = format!(
        "Name,Key\nstaging,{}\n",
        fake("sendgrid-api-key", 8).unwrap()
    );
    let p = write(
        d.path(),
        "Export-1b2c.zip",
        &zip_bytes(&[
            ("Engineering 0123456789abcdef0123456789abcdef/API keys fedcba9876543210fedcba9876543210.md", md.as_bytes()),
            ("Engineering 0123456789abcdef0123456789abcdef/Secrets db 00112233445566778899aabbccddeeff.csv", csv.as_bytes()),
        ]),
    );
    let r = scan(&[p], &ScanOptions::default());
    assert_eq!(r.findings.len(), 2, "{:#?}", r.findings);
    let md_f = r
        .findings
        .iter()
        .find(|f| f.rule_id == "openai-api-key")
        .unwrap();
    assert_eq!(
        md_f.location.as_deref(),
        Some("Notion page Engineering / API keys")
    );
    assert_eq!((md_f.line, md_f.column), (5, 10));
    let csv_f = r
        .findings
        .iter()
        .find(|f| f.rule_id == "sendgrid-api-key")
        .unwrap();
    assert_eq!(csv_f.line, 2);
}

#[test]
fn confluence_export_entities_are_decoded() {
    let d = tempfile::tempdir().unwrap();
    let secret = fake("generic-secret", 9).unwrap();
    let body = format!(
        "<?xml version=\"1.0\"?>\n<hibernate-generic>\n<object class=\"Page\">\n<property name=\"title\">Ops</property>\n\
         <property name=\"body\">&lt;p&gt;db config:&lt;/p&gt;\n&lt;pre&gt;\n&amp;quot;password&amp;quot;: &amp;quot;{}&amp;quot;&lt;/pre&gt;</property>\n</object>\n",
        secret.replace('&', "&amp;amp;")
    );
    let html = format!(
        "<html><body>\n<p>Slack hook:</p>\n<p>{}</p>\n</body></html>\n",
        fake("slack-webhook", 10).unwrap().replace('/', "&#x2F;")
    );
    let p = write(
        d.path(),
        "SPACE-export.zip",
        &zip_bytes(&[
            ("entities.xml", body.as_bytes()),
            ("Ops_123456.html", html.as_bytes()),
        ]),
    );
    let r = scan(&[p], &ScanOptions::default());
    assert_eq!(r.findings.len(), 2, "{:#?}", r.findings);
    let g = r
        .findings
        .iter()
        .find(|f| f.rule_id == "generic-secret")
        .unwrap();
    assert!(g.file.ends_with("SPACE-export.zip!entities.xml"));
    assert_eq!(g.line, 7);
    assert!(
        g.redacted.ends_with(&secret[secret.len() - 4..]),
        "{} vs {}",
        g.redacted,
        secret
    );
    let h = r
        .findings
        .iter()
        .find(|f| f.rule_id == "slack-webhook")
        .unwrap();
    assert_eq!(h.line, 3);
}

#[test]
fn docx_text_is_scanned_with_runs_joined() {
    let d = tempfile::tempdir().unwrap();
    let token = fake("anthropic-api-key", 11).unwrap();
    let (a, b) = token.split_at(20);
    let doc = format!(
        "<?xml version=\"1.0\"?><w:document><w:body><w:p><w:r><w:t>Runbook</w:t></w:r></w:p><w:p><w:r><w:t>Step 1</w:t></w:r></w:p>\
         <w:p><w:r><w:t xml:space=\"preserve\">key: {a}</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>{b}</w:t></w:r></w:p></w:body></w:document>"
    );
    let p = write(
        d.path(),
        "runbook.docx",
        &zip_bytes(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", doc.as_bytes()),
        ]),
    );
    let r = scan(&[p], &ScanOptions::default());
    let f = one(&r);
    assert!(f.file.ends_with("runbook.docx!word/document.xml"));
    assert_eq!(
        (f.line, f.column, f.rule_id.as_str()),
        (3, 6, "anthropic-api-key")
    );
}

#[test]
fn stdin_stream_may_be_gzipped() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(
        format!(
            "line\nDIGITALOCEAN_TOKEN={}\n",
            fake("digitalocean-token", 12).unwrap()
        )
        .as_bytes(),
    )
    .unwrap();
    let r = scan_reader(
        &scanner(),
        Cursor::new(gz.finish().unwrap()),
        "<stdin>",
        &ScanOptions::default(),
    );
    let f = one(&r);
    assert_eq!((f.file.as_str(), f.line), ("<stdin>", 2));
}

#[test]
fn binary_files_are_skipped_by_content() {
    let d = tempfile::tempdir().unwrap();
    let mut data = vec![0u8, 1, 2, 3];
    data.extend_from_slice(format!("GITHUB_TOKEN={}", gh(13)).as_bytes());
    write(d.path(), "blob.bin", &data);
    let r = scan(&[d.path().to_path_buf()], &ScanOptions::default());
    assert!(r.findings.is_empty());
    assert_eq!(r.binary_skipped, 1);
}

/// 64 MiB of zeros deflates to ~64 KiB; with an 8 MiB budget the scan must stop early, say
/// why, and never hold more than the budget.
#[test]
fn archive_bomb_is_refused_within_limits() {
    let zeros = vec![0u8; 64 << 20];
    let bomb = zip_bytes(&[
        ("a.txt", format!("GITHUB_TOKEN={}\n", gh(14)).as_bytes()),
        ("zeros.bin", &zeros),
    ]);
    drop(zeros);
    assert!(bomb.len() < 1 << 20);
    // Nest it: a zip holding ten copies of the bomb.
    let copies: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| (format!("b{i}.zip"), bomb.clone()))
        .collect();
    let refs: Vec<(&str, &[u8])> = copies
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let nested = zip_bytes(&refs);
    let d = tempfile::tempdir().unwrap();
    let p1 = write(d.path(), "bomb.zip", &bomb);
    let p2 = write(d.path(), "nested-bomb.zip", &nested);
    let limits = Limits {
        max_archive_bytes: 8 << 20,
        max_in_memory: 4 << 20,
        ..Limits::default()
    };
    let opts = ScanOptions {
        limits,
        ..ScanOptions::default()
    };
    for p in [p1, p2] {
        let r = scan(std::slice::from_ref(&p), &opts);
        assert!(
            r.notices.iter().any(|n| n.message.contains("archive bomb")),
            "{:?}",
            r.notices
        );
        assert!(r.bytes <= 8 << 20, "read {} bytes", r.bytes);
        // What came before the bomb member is still reported.
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    }
}

#[test]
fn xlsx_shared_strings_and_odt_paragraphs_are_scanned() {
    let d = tempfile::tempdir().unwrap();
    let strings = format!(
        "<?xml version=\"1.0\"?><sst><si><t>service</t></si><si><t>key</t></si><si><t>{}</t></si></sst>",
        fake("sendgrid-api-key", 20).unwrap()
    );
    let xlsx = write(
        d.path(),
        "keys.xlsx",
        &zip_bytes(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("xl/sharedStrings.xml", strings.as_bytes()),
        ]),
    );
    let r = scan(&[xlsx], &ScanOptions::default());
    let f = one(&r);
    assert!(f.file.ends_with("keys.xlsx!xl/sharedStrings.xml"));
    assert_eq!((f.line, f.rule_id.as_str()), (3, "sendgrid-api-key"));

    let content = format!(
        "<office:document-content><office:text><text:p>Notes</text:p><text:p>hf: <text:span>{}</text:span></text:p></office:text></office:document-content>",
        fake("huggingface-token", 21).unwrap()
    );
    let odt = write(
        d.path(),
        "notes.odt",
        &zip_bytes(&[
            ("mimetype", b"application/vnd.oasis.opendocument.text"),
            ("content.xml", content.as_bytes()),
        ]),
    );
    let r = scan(&[odt], &ScanOptions::default());
    let f = one(&r);
    assert!(f.file.ends_with("notes.odt!content.xml"));
    assert_eq!(
        (f.line, f.column, f.rule_id.as_str()),
        (2, 5, "huggingface-token")
    );
}

#[test]
fn json_escaped_webhook_in_a_plain_json_file_is_found_at_its_line() {
    let d = tempfile::tempdir().unwrap();
    let hook = fake("slack-webhook", 22).unwrap().replace('/', "\\/");
    let p = write(
        d.path(),
        "export.json",
        format!("{{\n  \"a\": 1,\n  \"hook\": \"{hook}\"\n}}\n").as_bytes(),
    );
    let r = scan(&[p], &ScanOptions::default());
    let f = one(&r);
    assert_eq!(
        (f.line, f.column, f.rule_id.as_str()),
        (3, 12, "slack-webhook")
    );
}
