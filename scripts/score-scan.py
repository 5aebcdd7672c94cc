#!/usr/bin/env python3
"""Scores a secret scanner's output against the labelled corpus.

usage: score-scan.py LABELS_SPAN_TSV CORPUS_ROOT TOOL OUTPUT_FILE
TOOL: airlock | kingfisher | detect-secrets | ripsecrets | secretlint

A finding matches a label when it is in the same file and its line lies within the label's
lines (multi-line keys). Each distinct (file, line) a tool reports that matches no label is a
false positive; each label no finding matches is a miss.
"""
import json
import os
import sys


def rel(path, root):
    path = path.replace("\\", "/")
    root = root.rstrip("/") + "/"
    if path.startswith(root):
        path = path[len(root):]
    if path.startswith("./"):
        path = path[2:]
    return path


def parse(tool, text, root):
    out = set()
    if tool == "airlock":
        for line in text.splitlines():
            if line.strip():
                d = json.loads(line)
                out.add((rel(d["file"], root), d["line"]))
    elif tool == "kingfisher":
        d = json.loads(text) if text.strip() else {"findings": []}
        for f in d.get("findings", []):
            f = f.get("finding", f)
            out.add((rel(f["path"], root), f["line"]))
    elif tool == "detect-secrets":
        d = json.loads(text)
        for path, items in d["results"].items():
            for i in items:
                out.add((rel(path, root), i["line_number"]))
    elif tool == "ripsecrets":
        for line in text.splitlines():
            parts = line.split(":", 2)
            if len(parts) >= 2 and parts[1].isdigit():
                out.add((rel(parts[0], root), int(parts[1])))
    elif tool == "secretlint":
        d = json.loads(text) if text.strip() else []
        for f in d:
            for m in f.get("messages", []):
                out.add((rel(f["filePath"], root), m["loc"]["start"]["line"]))
    else:
        sys.exit(f"unknown tool {tool}")
    return {f for f in out if not f[0].startswith("labels")}


def main():
    labels_path, root, tool, output = sys.argv[1:5]
    labels = []
    for line in open(labels_path):
        f, start, end, rule = line.rstrip("\n").split("\t")
        labels.append((f, int(start), int(end), rule))
    found = parse(tool, open(output, encoding="utf-8", errors="replace").read(), root)
    matched = set()
    fps = []
    for f, ln in sorted(found):
        hit = [i for i, l in enumerate(labels) if l[0] == f and l[1] <= ln <= l[2]]
        if hit:
            matched.update(hit)
        else:
            fps.append((f, ln))
    misses = [labels[i] for i in range(len(labels)) if i not in matched]
    tp = len(matched)
    precision = tp / (tp + len(fps)) if tp + len(fps) else 0.0
    recall = tp / len(labels) if labels else 0.0
    print(f"{tool}: labels {len(labels)} TP {tp} FP {len(fps)} FN {len(misses)} "
          f"precision {precision:.3f} recall {recall:.3f}")
    if os.environ.get("VERBOSE"):
        for fp in fps:
            print(f"  FP {fp[0]}:{fp[1]}")
        for m in misses:
            print(f"  FN {m[0]}:{m[1]} ({m[3]})")


if __name__ == "__main__":
    main()
