//! Pictures of a blast radius: Graphviz DOT and Mermaid. Only what is reached is drawn (denied
//! pairs would bury the picture); one edge per (resource, class, reach), resources grouped by
//! environment.

use crate::reach::{BlastRadius, Reach};
use airlock_core::OpClass;
use std::collections::BTreeMap;
use std::fmt::Write;

type Edges<'a> = BTreeMap<(String, String), BTreeMap<(OpClass, Reach), Vec<&'a str>>>;

/// (environment, resource) -> (class, reach) -> actions.
fn edges(b: &BlastRadius) -> Edges<'_> {
    let mut out: Edges<'_> = BTreeMap::new();
    for e in b.reached() {
        let env = e
            .environment
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "unknown".into());
        out.entry((env, format!("{}/{}", e.upstream, e.resource)))
            .or_default()
            .entry((e.class, e.reach))
            .or_default()
            .push(&e.action);
    }
    out
}

fn label(class: OpClass, reach: Reach, actions: &[&str]) -> String {
    let shown: Vec<&str> = actions.iter().take(4).copied().collect();
    let more = actions.len().saturating_sub(4);
    let mut s = format!(
        "{class} {}: {}",
        reach.as_str().replace('_', " "),
        shown.join(", ")
    );
    if more > 0 {
        let _ = write!(s, " +{more}");
    }
    s
}

/// DOT strings: quotes and backslashes escaped, no newlines.
fn dot_str(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// A Graphviz DOT digraph.
pub fn dot(b: &BlastRadius) -> String {
    let mut s = String::from(
        "digraph blast_radius {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n",
    );
    let _ = writeln!(
        s,
        "  subject [label=\"{}\\n{}\", shape=ellipse, style=bold];",
        dot_str(&format!("{} {}", b.subject.kind, b.subject.id)),
        dot_str(&b.headline)
    );
    let edges = edges(b);
    let mut envs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (env, res) in edges.keys() {
        envs.entry(env).or_default().push(res);
    }
    let node = |env: &str, res: &str| {
        format!(
            "r_{}",
            dot_str(&format!("{env}_{res}")).replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        )
    };
    for (i, (env, list)) in envs.iter().enumerate() {
        let _ = writeln!(
            s,
            "  subgraph cluster_{i} {{\n    label=\"{}\";",
            dot_str(env)
        );
        for r in list {
            let _ = writeln!(s, "    {} [label=\"{}\"];", node(env, r), dot_str(r));
        }
        s.push_str("  }\n");
    }
    for ((env, res), by) in &edges {
        for ((class, reach), actions) in by {
            let style = match reach {
                Reach::AfterApproval => "style=dashed, color=orange",
                Reach::Outright if *class >= OpClass::Destructive => "color=red, penwidth=2",
                Reach::Unchecked => "color=red, penwidth=3",
                _ => "color=gray40",
            };
            let _ = writeln!(
                s,
                "  subject -> {} [label=\"{}\", {style}];",
                node(env, res),
                dot_str(&label(*class, *reach, actions))
            );
        }
    }
    s.push_str("}\n");
    s
}

/// Mermaid text: labels quoted, quotes replaced (Mermaid has no escape for them).
fn mm_str(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .map(|c| match c {
            '"' => '\'',
            '|' => '/',
            c => c,
        })
        .collect()
}

/// A Mermaid flowchart.
pub fn mermaid(b: &BlastRadius) -> String {
    let mut s = String::from("flowchart LR\n");
    let _ = writeln!(
        s,
        "  subject([\"{}<br/>{}\"])",
        mm_str(&format!("{} {}", b.subject.kind, b.subject.id)),
        mm_str(&b.headline)
    );
    let edges = edges(b);
    let mut ids: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut envs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (env, res) in edges.keys() {
        envs.entry(env).or_default().push(res);
    }
    for (i, (env, list)) in envs.iter().enumerate() {
        let _ = writeln!(s, "  subgraph env{i}[\"{}\"]", mm_str(env));
        for r in list {
            let n = ids.len();
            ids.insert((env.to_string(), r.to_string()), n);
            let _ = writeln!(s, "    r{n}[\"{}\"]", mm_str(r));
        }
        s.push_str("  end\n");
    }
    for (key, by) in &edges {
        let n = ids.get(key).copied().unwrap_or_default();
        for ((class, reach), actions) in by {
            let arrow = if *reach == Reach::AfterApproval {
                "-.->"
            } else {
                "==>"
            };
            let _ = writeln!(
                s,
                "  subject {arrow}|\"{}\"| r{n}",
                mm_str(&label(*class, *reach, actions))
            );
        }
    }
    s
}
