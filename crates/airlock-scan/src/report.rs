//! Report writers: human (optionally coloured), JSON Lines, SARIF 2.1.0. All write to any
//! `impl Write` and print only redacted secrets.

use crate::finding::Finding;
use crate::inputs::Notice;
use crate::rules::Rule;
use serde_json::json;
use std::io::{self, Write};

/// Human-readable lines, one block per finding, ANSI-coloured when `color` is set.
pub fn write_human<W: Write>(w: &mut W, findings: &[Finding], color: bool) -> io::Result<()> {
    let (bold, red, dim, reset) = if color {
        ("\x1b[1m", "\x1b[31m", "\x1b[2m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    for f in findings {
        write!(w, "{bold}{}:{}:{}{reset}", f.file, f.line, f.column)?;
        if let Some(loc) = &f.location {
            write!(w, " {dim}[{loc}]{reset}")?;
        }
        writeln!(w, " {red}{}{reset} {}", f.rule_id, f.redacted)?;
        writeln!(
            w,
            "    {dim}{} · fingerprint {}{reset}",
            f.description, f.fingerprint
        )?;
    }
    Ok(())
}

/// One JSON object per finding, one per line.
pub fn write_json<W: Write>(w: &mut W, findings: &[Finding]) -> io::Result<()> {
    for f in findings {
        serde_json::to_writer(&mut *w, f)?;
        writeln!(w)?;
    }
    Ok(())
}

/// A SARIF 2.1.0 log with one run, the rules used and one result per finding.
pub fn write_sarif<W: Write>(
    w: &mut W,
    findings: &[Finding],
    rules: &[Rule],
    notices: &[Notice],
) -> io::Result<()> {
    let rules_json: Vec<_> = rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": { "text": r.description },
                "defaultConfiguration": { "level": "error" },
            })
        })
        .collect();
    let results: Vec<_> = findings
        .iter()
        .map(|f| {
            let index = rules.iter().position(|r| r.id == f.rule_id);
            let mut physical = json!({
                "artifactLocation": { "uri": sarif_uri(&f.file) },
                "region": { "startLine": f.line, "startColumn": f.column },
            });
            let mut location = json!({ "physicalLocation": physical.take() });
            if let Some(loc) = &f.location {
                location["message"] = json!({ "text": loc });
            }
            let mut result = json!({
                "ruleId": f.rule_id,
                "level": "error",
                "message": { "text": format!("{} found: {}", f.description, f.redacted) },
                "locations": [location],
                "partialFingerprints": { "airlockFingerprint/v1": f.fingerprint },
            });
            if let Some(i) = index {
                result["ruleIndex"] = json!(i);
            }
            result
        })
        .collect();
    let notifications: Vec<_> = notices
        .iter()
        .map(|n| json!({ "level": "warning", "message": { "text": format!("{}: {}", n.file, n.message) } }))
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "airlock-scan",
                "informationUri": "https://github.com/airlock/airlock",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules_json,
            }},
            "invocations": [{ "executionSuccessful": true, "toolExecutionNotifications": notifications }],
            "results": results,
        }],
    });
    serde_json::to_writer_pretty(&mut *w, &log)?;
    writeln!(w)
}

/// SARIF wants URIs: forward slashes, archive members kept readable.
fn sarif_uri(file: &str) -> String {
    file.replace('\\', "/").replace(' ', "%20")
}
