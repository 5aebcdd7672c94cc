//! Exports of the tools where credentials get pasted: Slack, Notion, Confluence, and office
//! documents (docx/xlsx/odt are zips of XML).

use crate::engine::Scanner;
use crate::finding::{Finding, Origin};
use serde_json::Value;
use std::collections::HashMap;

/// True for a Slack export member such as `general/2026-04-25.json`.
pub fn is_slack_day_file(rel: &str) -> Option<(&str, &str)> {
    let rel = rel.trim_start_matches("./");
    let (chan, file) = rel.rsplit_once('/')?;
    let chan = chan.rsplit('/').next()?;
    let date = file.strip_suffix(".json")?;
    let b = date.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    ok.then_some((chan, date))
}

/// Reads `users.json` of a Slack export into id -> display name.
pub fn slack_users(json: &[u8]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    if let Ok(Value::Array(users)) = serde_json::from_slice::<Value>(json) {
        for u in users {
            let id = u.get("id").and_then(Value::as_str);
            let name = u
                .get("name")
                .and_then(Value::as_str)
                .or_else(|| u.get("real_name").and_then(Value::as_str));
            if let (Some(id), Some(name)) = (id, name) {
                m.insert(id.to_string(), name.to_string());
            }
        }
    }
    m
}

fn push_text<'a>(out: &mut Vec<(String, &'a str)>, label: String, v: Option<&'a Value>) {
    if let Some(s) = v.and_then(Value::as_str) {
        if !s.is_empty() {
            out.push((label, s));
        }
    }
}

/// Text fields of a Slack message worth scanning, with a label for the location.
fn message_texts(msg: &Value) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    push_text(&mut out, String::new(), msg.get("text"));
    for (key, fields) in [
        (
            "attachments",
            &["text", "fallback", "pretext", "title", "footer"][..],
        ),
        (
            "files",
            &[
                "preview",
                "preview_highlight",
                "plain_text",
                "title",
                "name",
            ][..],
        ),
    ] {
        if let Some(Value::Array(items)) = msg.get(key) {
            for (i, item) in items.iter().enumerate() {
                for f in fields {
                    push_text(&mut out, format!(" {key}[{i}].{f}"), item.get(*f));
                }
            }
        }
    }
    // An edit: the export keeps the new message and, for some exporters, the previous text.
    for key in ["message", "previous_message"] {
        if let Some(inner) = msg.get(key) {
            push_text(&mut out, format!(" {key}.text"), inner.get("text"));
        }
    }
    out
}

/// Scans one channel-day file of a Slack export; `None` if it is not the expected JSON.
pub fn scan_slack_day(
    scanner: &Scanner,
    json: &[u8],
    file: &str,
    channel: &str,
    date: &str,
    users: &HashMap<String, String>,
) -> Option<Vec<Finding>> {
    let Ok(Value::Array(messages)) = serde_json::from_slice::<Value>(json) else {
        return None;
    };
    let mut out = Vec::new();
    for msg in &messages {
        let ts = msg.get("ts").and_then(Value::as_str).unwrap_or("?");
        let user = msg
            .get("user")
            .or_else(|| msg.get("bot_id"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        let who = match users.get(user) {
            Some(name) => format!("{user} ({name})"),
            None => user.to_string(),
        };
        for (label, text) in message_texts(msg) {
            let origin = Origin {
                file: file.to_string(),
                location: Some(format!("#{channel} {date} ts={ts} user={who}{label}")),
            };
            out.extend(scanner.scan_bytes(text.as_bytes(), &origin));
        }
    }
    Some(out)
}

/// For a Notion export path, the page titles without Notion's 32-hex ids:
/// `Eng 0123…ef/API keys 4567…89.md` -> `Notion page Eng / API keys`.
pub fn notion_location(path: &str) -> Option<String> {
    let mut titles = Vec::new();
    let mut any = false;
    for comp in path.split(['/', '!']) {
        let stem = comp
            .rsplit_once('.')
            .map_or(comp, |(s, ext)| if ext.len() <= 4 { s } else { comp });
        match stem.rsplit_once(' ') {
            Some((title, id)) if id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()) => {
                any = true;
                titles.push(title.to_string());
            }
            _ => {}
        }
    }
    any.then(|| format!("Notion page {}", titles.join(" / ")))
}

/// Closing tags after which a line break belongs in the extracted text (paragraphs, rows,
/// cells of Word, Excel, OpenDocument, HTML).
const BREAK_TAGS: &[&[u8]] = &[
    b"p",
    b"si",
    b"row",
    b"tr",
    b"br",
    b"h",
    b"li",
    b"div",
    b"table-row",
    b"tc",
    b"td",
];

/// The text of an office XML part: tags removed, runs joined (so a token split across
/// formatting runs is whole again), one line per paragraph. Entities are left for the decoder.
pub fn xml_text(xml: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(xml.len() / 2);
    let mut i = 0;
    while i < xml.len() {
        let Some(lt) = memchr::memchr(b'<', &xml[i..]) else {
            out.extend_from_slice(&xml[i..]);
            break;
        };
        out.extend_from_slice(&xml[i..i + lt]);
        let tag_start = i + lt;
        let Some(gt) = memchr::memchr(b'>', &xml[tag_start..]) else {
            break;
        };
        let tag = &xml[tag_start + 1..tag_start + gt];
        if let Some(name) = tag.strip_prefix(b"/") {
            let local = name.rsplit(|&c| c == b':').next().unwrap_or(name);
            if BREAK_TAGS.contains(&local) {
                out.push(b'\n');
            } else if local == b"c" || local == b"table-cell" {
                out.push(b'\t');
            }
        } else {
            let name_end = tag
                .iter()
                .position(|c| c.is_ascii_whitespace() || *c == b'/')
                .unwrap_or(tag.len());
            let local = tag[..name_end]
                .rsplit(|&c| c == b':')
                .next()
                .unwrap_or(&tag[..name_end]);
            if local == b"br" || local == b"tab" || local == b"line-break" {
                out.push(b'\n');
            }
        }
        i = tag_start + gt + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_day_paths() {
        assert_eq!(
            is_slack_day_file("general/2026-04-25.json"),
            Some(("general", "2026-04-25"))
        );
        assert_eq!(
            is_slack_day_file("x/general/2026-04-25.json"),
            Some(("general", "2026-04-25"))
        );
        assert_eq!(is_slack_day_file("channels.json"), None);
        assert_eq!(is_slack_day_file("general/notes.json"), None);
    }

    #[test]
    fn notion_titles() {
        let p = "export.zip!Eng 0123456789abcdef0123456789abcdef/API keys fedcba9876543210fedcba9876543210.md";
        assert_eq!(
            notion_location(p).as_deref(),
            Some("Notion page Eng / API keys")
        );
        assert_eq!(notion_location("src/main.rs"), None);
    }

    #[test]
    fn word_runs_join_and_paragraphs_break() {
        let xml = br#"<w:body><w:p><w:r><w:t>key ghp_ab</w:t></w:r><w:r><w:t>cd</w:t></w:r></w:p><w:p><w:t>next</w:t></w:p></w:body>"#;
        assert_eq!(xml_text(xml), b"key ghp_abcd\nnext\n");
    }
}
