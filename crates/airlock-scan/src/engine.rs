//! The matching engine: keyword prefilter, windowed regexes, checks, deduplication, streaming.

use crate::decode;
use crate::filters;
use crate::finding::{Finding, Origin};
use crate::rules::{Check, Needs, Rule, RuleError, MAX_WINDOW};
use aho_corasick::{packed, AhoCorasick, AhoCorasickBuilder, MatchKind};
use globset::GlobSet;
use regex::bytes::Regex;
use std::cell::RefCell;
use std::io::{self, Read};

/// Bytes read per step when streaming; large files are never held whole.
pub const CHUNK: usize = 1 << 20;
/// Bytes carried from one step to the next so that matches spanning a chunk boundary are seen
/// whole. Larger than any rule window plus the longest token.
pub const OVERLAP: usize = 64 << 10;
/// How many leading bytes are sniffed for NUL to call a file binary.
const SNIFF: usize = 8192;
/// Most keywords one Teddy searcher is given. Teddy verifies a candidate for every byte
/// whose nibbles match its buckets' masks; with all ~70 built-in keywords in one searcher that
/// was nearly every byte of prose-like text and no faster than the DFA (callgrind, 154 MB of
/// the generated corpus: 2.7 G instructions either way). Whole scan of the same 154 MB with
/// groups of at most 8 / 12 / 15 / 16 / 18 / 20 / 32 keywords: 3.62 / 3.34 / 3.28 / 3.20 /
/// 3.39 / 3.40 / 3.51 G instructions.
const GROUP_MAX: usize = 16;

/// One searcher over some keywords.
#[derive(Debug, Clone)]
struct Group {
    /// Teddy, over the lowercased text; `None` where this CPU has no SIMD for it.
    teddy: Option<packed::Searcher>,
    /// The same keywords as a case-insensitive DFA, over the text as it is: the fallback.
    dfa: AhoCorasick,
    /// The scanner-wide pattern index of each of this searcher's patterns.
    patterns: Vec<usize>,
}

/// Splits the keywords into searchers of at most [`GROUP_MAX`] patterns, never putting the
/// keywords of one rule in two searchers, so that each rule's hits still arrive in order (its
/// windows merge as with one automaton). Keywords are lowercase and Teddy looks for them in a
/// lowercased copy of the text, which is ASCII case-insensitive matching; where Teddy cannot
/// run, each group's DFA gives the same matches.
fn prefilter_groups(rules: &[Rule], patterns: &[String]) -> Result<Vec<Group>, RuleError> {
    // Rules that share a keyword, or whose keywords contain one another (`new` folds those),
    // must share a group, so that all of a rule's hits come from one searcher, in order.
    let mut cluster: Vec<usize> = (0..rules.len()).collect();
    fn root(c: &mut [usize], mut i: usize) -> usize {
        while c[i] != i {
            c[i] = c[c[i]];
            i = c[i];
        }
        i
    }
    for (i, a) in rules.iter().enumerate() {
        for (j, b) in rules.iter().enumerate().skip(i + 1) {
            let related = a.keywords.iter().any(|k| {
                b.keywords
                    .iter()
                    .any(|l| k.contains(l.as_str()) || l.contains(k.as_str()))
            });
            if related {
                let (ri, rj) = (root(&mut cluster, i), root(&mut cluster, j));
                cluster[rj] = ri;
            }
        }
    }
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut roots: Vec<usize> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let r = root(&mut cluster, i);
        let pats: Vec<usize> = rule
            .keywords
            .iter()
            .filter_map(|k| patterns.iter().position(|p| p == k))
            .collect();
        match roots.iter().position(|&x| x == r) {
            Some(c) => {
                for p in pats {
                    if !members[c].contains(&p) {
                        members[c].push(p);
                    }
                }
            }
            None => {
                roots.push(r);
                members.push(pats);
            }
        }
    }
    // First fit, in rule order.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for m in members.into_iter().filter(|m| !m.is_empty()) {
        match groups.iter_mut().find(|g| g.len() + m.len() <= GROUP_MAX) {
            Some(g) => g.extend(m),
            None => groups.push(m),
        }
    }
    groups
        .into_iter()
        .map(|ids| {
            let words = ids.iter().map(|&i| &patterns[i]);
            let teddy = packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostLongest)
                .only_teddy(true)
                .heuristic_pattern_limits(false)
                .builder()
                .extend(words.clone())
                .build();
            let dfa = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                // A DFA costs memory once and is the fastest automaton to walk.
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(words)
                .map_err(|e| RuleError::Prefilter(e.to_string()))?;
            Ok(Group {
                teddy,
                dfa,
                patterns: ids,
            })
        })
        .collect()
}

thread_local! {
    /// The lowercased copy of the buffer being prefiltered, reused so that no scan allocates it.
    static LOWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `buf` ASCII-lowercased, in this thread's reused buffer.
fn with_lowercase<T>(buf: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    LOWER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut lower) => {
            lower.clear();
            lower.extend_from_slice(buf);
            lower.make_ascii_lowercase();
            let out = f(&lower);
            // An archive member scanned whole may be large; do not keep its copy around.
            if lower.capacity() > 4 * CHUNK {
                *lower = Vec::new();
            }
            out
        }
        // Only on re-entry, which the engine does not do; stay correct regardless.
        Err(_) => f(&buf.to_ascii_lowercase()),
    })
}

/// How far a window reaches back or forward looking for its line's edges.
const LINE_REACH: usize = 4096;

/// Global allowlist from the configuration file.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    /// Files matching these globs are not scanned.
    pub paths: Option<GlobSet>,
    /// Secrets matching one of these are dropped.
    pub regexes: Vec<Regex>,
}

/// A compiled rule set with its prefilter.
#[derive(Debug, Clone)]
pub struct Scanner {
    rules: Vec<Rule>,
    /// The keyword prefilter: small groups of keywords, each searched for on its own (see
    /// [`prefilter_groups`]).
    groups: Vec<Group>,
    /// For each prefilter pattern, the rules it triggers.
    kw_rules: Vec<Vec<usize>>,
    /// Rules without keywords: their regex runs over every buffer.
    unfiltered: Vec<usize>,
    allow: Allowlist,
}

/// Where one rule's regex runs: the lines around one or more keyword hits.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: usize,
    end: usize,
    /// Where the last keyword hit that opened or widened the window ends.
    last_hit: usize,
}

/// A rule match before position bookkeeping.
#[derive(Debug)]
struct Candidate {
    rule: usize,
    start: usize,
    end: usize,
    /// Empty when not `valid`.
    secret: Vec<u8>,
    /// False when a format check or filter rejected it; it still vetoes lower-priority rules
    /// on the same bytes, so that a look-alike rejected by its own rule is not reported by the
    /// generic one.
    valid: bool,
}

impl Candidate {
    /// Copies the secret only when it may be reported: most candidates of the generic rule are
    /// rejected, and one allocation each was a measurable share of the scan.
    fn new(rule: usize, start: usize, end: usize, secret: &[u8], valid: bool) -> Candidate {
        Candidate {
            rule,
            start,
            end,
            secret: if valid { secret.to_vec() } else { Vec::new() },
            valid,
        }
    }
}

/// What scanning one stream produced.
#[derive(Debug, Default)]
pub struct StreamOutcome {
    /// Findings, in order of position.
    pub findings: Vec<Finding>,
    /// Bytes read.
    pub bytes: u64,
    /// The stream was skipped as binary.
    pub binary: bool,
}

impl Scanner {
    /// Builds a scanner over `rules`.
    pub fn new(rules: Vec<Rule>, allow: Allowlist) -> Result<Scanner, RuleError> {
        let mut seen = std::collections::HashSet::new();
        for r in &rules {
            if !seen.insert(r.id.clone()) {
                return Err(RuleError::Duplicate(r.id.clone()));
            }
        }
        let mut patterns: Vec<String> = Vec::new();
        let mut kw_rules: Vec<Vec<usize>> = Vec::new();
        let mut unfiltered = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if r.keywords.is_empty() {
                unfiltered.push(i);
            }
            for k in &r.keywords {
                match patterns.iter().position(|p| p == k) {
                    Some(p) => kw_rules[p].push(i),
                    None => {
                        patterns.push(k.clone());
                        kw_rules.push(vec![i]);
                    }
                }
            }
        }
        // Matching is non-overlapping, so a keyword found inside a longer one is not reported
        // on its own: the longer keyword triggers the shorter one's rules too.
        for i in 0..patterns.len() {
            for j in 0..patterns.len() {
                if i != j
                    && patterns[j].len() > patterns[i].len()
                    && patterns[j].contains(patterns[i].as_str())
                {
                    let extra = kw_rules[i].clone();
                    for r in extra {
                        if !kw_rules[j].contains(&r) {
                            kw_rules[j].push(r);
                        }
                    }
                }
            }
        }
        let groups = prefilter_groups(&rules, &patterns)?;
        Ok(Scanner {
            rules,
            groups,
            kw_rules,
            unfiltered,
            allow,
        })
    }

    /// A scanner with the built-in rules and no allowlist.
    pub fn with_builtins() -> Result<Scanner, RuleError> {
        Scanner::new(Rule::builtins()?, Allowlist::default())
    }

    /// The rules in use.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// True when the configuration allowlists this path entirely.
    pub fn path_allowed(&self, path: &str) -> bool {
        self.allow.paths.as_ref().is_some_and(|g| g.is_match(path))
    }

    /// Scans an in-memory text whole.
    pub fn scan_bytes(&self, data: &[u8], origin: &Origin) -> Vec<Finding> {
        let mut out = Vec::new();
        let cands = self.candidates(data, origin);
        self.emit(data, &cands, 1, origin, &mut out);
        out.extend(self.key_file(data, origin));
        out
    }

    /// Airlock's own master key file (`airlock.key`: 64 hex digits and nothing else) holds no
    /// keyword a rule could find it by, but whoever reads it can open every sealed secret.
    fn key_file(&self, head: &[u8], origin: &Origin) -> Option<Finding> {
        let name = origin.file.rsplit(['/', '\\', '!']).next()?;
        let key = head.trim_ascii();
        if name != "airlock.key" || key.len() != 64 || !key.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let rule = self.rules.iter().find(|r| r.id == "airlock-master-key")?;
        Some(Finding::new(&rule.id, &rule.description, origin, 1, 1, key))
    }

    /// Scans a stream in bounded chunks; binary content (a NUL in the first bytes) is skipped
    /// when `sniff_binary` is set.
    pub fn scan_reader<R: Read>(
        &self,
        mut r: R,
        origin: &Origin,
        sniff_binary: bool,
    ) -> io::Result<StreamOutcome> {
        let mut out = StreamOutcome::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut base_line: u64 = 1;
        // Sniff on the first few KiB before reading a whole chunk of what may be a large binary.
        let mut eof = fill(&mut r, &mut buf, SNIFF)?;
        if sniff_binary && is_binary(&buf) {
            out.binary = true;
            out.bytes = buf.len() as u64;
            return Ok(out);
        }
        if eof {
            out.findings.extend(self.key_file(&buf, origin));
        }
        loop {
            if !eof {
                eof = fill(&mut r, &mut buf, CHUNK + OVERLAP)?;
            }
            let safe_end = if eof {
                buf.len()
            } else {
                // Cut at a line start inside the overlap, so the next step begins on a fresh line.
                let cut = buf.len() - OVERLAP;
                memchr::memrchr(b'\n', &buf[cut..buf.len() - OVERLAP / 2])
                    .map_or(cut, |p| cut + p + 1)
            };
            let mut cands = self.candidates(&buf, origin);
            cands.retain(|c| c.start < safe_end);
            self.emit(&buf, &cands, base_line, origin, &mut out.findings);
            out.bytes += safe_end as u64;
            if eof {
                return Ok(out);
            }
            base_line += memchr::memchr_iter(b'\n', &buf[..safe_end]).count() as u64;
            buf.drain(..safe_end);
        }
    }

    /// Turns candidates into findings with line and column, honouring inline allow comments.
    fn emit(
        &self,
        buf: &[u8],
        cands: &[Candidate],
        base_line: u64,
        origin: &Origin,
        out: &mut Vec<Finding>,
    ) {
        let mut line = base_line;
        let mut counted = 0;
        for c in cands.iter().filter(|c| c.valid) {
            line += memchr::memchr_iter(b'\n', &buf[counted..c.start]).count() as u64;
            counted = c.start;
            let ls = memchr::memrchr(b'\n', &buf[..c.start]).map_or(0, |p| p + 1);
            let le = memchr::memchr(b'\n', &buf[c.start..]).map_or(buf.len(), |p| c.start + p);
            if memchr::memmem::find(&buf[ls..le], b"airlock:allow").is_some() {
                continue;
            }
            let column = 1 + buf[ls..c.start]
                .iter()
                .filter(|&&b| (b & 0xC0) != 0x80)
                .count() as u64;
            let rule = &self.rules[c.rule];
            out.push(Finding::new(
                &rule.id,
                &rule.description,
                origin,
                line,
                column,
                &c.secret,
            ));
        }
    }

    /// All candidates in `buf`, deduplicated by position and sorted by start.
    fn candidates(&self, buf: &[u8], origin: &Origin) -> Vec<Candidate> {
        with_lowercase(buf, |lower| self.candidates_in(buf, lower, origin))
    }

    /// [`Scanner::candidates`] with `lower`, `buf` ASCII-lowercased.
    fn candidates_in(&self, buf: &[u8], lower: &[u8], origin: &Origin) -> Vec<Candidate> {
        let mut cands = Vec::new();
        // One pending window per rule; hits arrive in order, so overlapping windows merge.
        let mut pending: Vec<Option<Window>> = vec![None; self.rules.len()];
        // Non-overlapping, leftmost-longest: faster than overlapping search, and `new` folds
        // the rules of keywords contained in longer ones into the longer ones' entries.
        self.for_each_hit(buf, lower, |pattern, m_start, m_end| {
            for &ri in &self.kw_rules[pattern] {
                let r = &self.rules[ri];
                let ws = if r.check == Check::Generic {
                    if !assignment_follows(buf, m_end) {
                        // Not an assignment by the quick test, but the regex may still match
                        // there (a key longer than the test looks, a `\x0B`): a window the
                        // hit falls in must search past it.
                        if let Some(w) = &mut pending[ri] {
                            if m_start < w.end {
                                w.last_hit = m_end;
                            }
                        }
                        continue;
                    }
                    // The key starts at most a few key characters before the keyword: start
                    // the regex there instead of at the start of the line.
                    let lo = m_start.saturating_sub(64);
                    buf[lo..m_start]
                        .iter()
                        .rposition(|&c| !is_key_byte(c))
                        .map_or(lo, |p| lo + p + 1)
                } else {
                    line_start(buf, m_start.saturating_sub(r.before))
                };
                let we = line_end(buf, (m_end + r.after).min(buf.len()));
                match &mut pending[ri] {
                    Some(w) if ws <= w.end => {
                        w.end = w.end.max(we);
                        w.last_hit = m_end;
                    }
                    slot => {
                        if let Some(w) = slot.take() {
                            self.run_rule(ri, buf, lower, w, origin, &mut cands);
                        }
                        *slot = Some(Window {
                            start: ws,
                            end: we,
                            last_hit: m_end,
                        });
                    }
                }
            }
        });
        for (ri, slot) in pending.into_iter().enumerate() {
            if let Some(w) = slot {
                self.run_rule(ri, buf, lower, w, origin, &mut cands);
            }
        }
        for &ri in &self.unfiltered {
            let whole = Window {
                start: 0,
                end: buf.len(),
                last_hit: buf.len(),
            };
            self.run_rule(ri, buf, lower, whole, origin, &mut cands);
        }
        dedup(&self.rules, cands)
    }

    /// Calls `f(pattern, start, end)` for each keyword match in `buf` (`lower` is `buf`
    /// ASCII-lowercased): leftmost-longest and non-overlapping within a group of keywords, in
    /// order within a group, and every rule's keywords are in one group.
    fn for_each_hit(&self, buf: &[u8], lower: &[u8], mut f: impl FnMut(usize, usize, usize)) {
        for g in &self.groups {
            match &g.teddy {
                Some(teddy) => {
                    for m in teddy.find_iter(lower) {
                        f(g.patterns[m.pattern().as_usize()], m.start(), m.end());
                    }
                }
                None => {
                    for m in g.dfa.find_iter(buf) {
                        f(g.patterns[m.pattern().as_usize()], m.start(), m.end());
                    }
                }
            }
        }
    }

    /// Runs one rule's regex over the window, raw and (if it has escapes) decoded.
    fn run_rule(
        &self,
        ri: usize,
        buf: &[u8],
        lower: &[u8],
        w: Window,
        origin: &Origin,
        out: &mut Vec<Candidate>,
    ) {
        let rule = &self.rules[ri];
        if rule
            .allow_paths
            .as_ref()
            .is_some_and(|g| g.is_match(&origin.file))
        {
            return;
        }
        let (ws, we) = (w.start, w.end);
        // The raw text only: an escape may decode to what the test looks for.
        if rule.needs.may_match(&lower[ws..we]) {
            let stop = if rule.needs == Needs::KeywordInMatch {
                w.last_hit
            } else {
                we
            };
            self.match_in(ri, &buf[..we], ws, stop, &|p| p, out);
        }
        let window = &buf[ws..we];
        if memchr::memchr2(b'\\', b'&', window).is_some() {
            if let Some(d) = decode::decode(window) {
                let end = d.text.len();
                self.match_in(ri, &d.text, 0, end, &|p| ws + d.to_original(p), out);
            }
        }
    }

    /// Runs one rule's regex over `hay` from `from`, for matches that start before `stop`.
    fn match_in(
        &self,
        ri: usize,
        hay: &[u8],
        from: usize,
        stop: usize,
        map: &dyn Fn(usize) -> usize,
        out: &mut Vec<Candidate>,
    ) {
        let rule = &self.rules[ri];
        if rule.check == Check::Generic {
            // The generic rule matches often in code (`token = request.token()`); splitting the
            // match by hand avoids running the capture engine on every one of them.
            let mut at = from;
            while at < stop {
                let Some((ms, me)) = self.find_generic(rule, hay, at) else {
                    break;
                };
                let m = &hay[ms..me];
                at = me.max(ms + 1);
                let Some((key, value)) = split_assignment(m) else {
                    continue;
                };
                let (vs, ve) = (ms + value.0, ms + value.1);
                let secret = &hay[vs..ve];
                let key = &m[key.0..key.1];
                let valid = self.accept(rule, secret, Some(key));
                out.push(Candidate::new(ri, map(vs), map(ve), secret, valid));
                if at > hay.len() {
                    break;
                }
            }
            return;
        }
        let mut locs = rule.regex.capture_locations();
        let mut at = from;
        while at <= hay.len() {
            let Some(whole) = rule.regex.captures_read_at(&mut locs, hay, at) else {
                break;
            };
            at = if whole.end() > whole.start() {
                whole.end()
            } else {
                whole.end() + 1
            };
            // The secret is the first participating group other than `key`, else the match.
            let span = (1..locs.len())
                .filter(|&g| Some(g) != rule.key_group)
                .find_map(|g| locs.get(g))
                .unwrap_or((whole.start(), whole.end()));
            let secret = &hay[span.0..span.1];
            let key = rule
                .key_group
                .and_then(|g| locs.get(g))
                .map(|(s, e)| &hay[s..e]);
            let valid = self.accept(rule, secret, key);
            out.push(Candidate::new(ri, map(span.0), map(span.1), secret, valid));
        }
    }

    /// The leftmost match of the generic rule in `hay` at or after `at`. Windows start where
    /// a key starts, so the match usually starts exactly at `at`: an anchored search that
    /// reports only the end finds it without the reverse scan an unanchored search needs for
    /// the start, and when a match starts at `at` it is the leftmost one, the same match.
    fn find_generic(&self, rule: &Rule, hay: &[u8], at: usize) -> Option<(usize, usize)> {
        if let (Some(anchored), Needs::KeywordInMatch) = (&rule.anchored, rule.needs) {
            let input = regex_automata::Input::new(hay)
                .range(at..)
                .anchored(regex_automata::Anchored::Yes);
            if let Some(h) = anchored.search_half(&input) {
                return Some((at, h.offset()));
            }
        }
        rule.regex.find_at(hay, at).map(|m| (m.start(), m.end()))
    }

    /// The checks and look-alike filters a matched secret must pass.
    fn accept(&self, rule: &Rule, secret: &[u8], key: Option<&[u8]>) -> bool {
        if rule
            .allow_regexes
            .iter()
            .chain(&self.allow.regexes)
            .any(|r| r.is_match(secret))
        {
            return false;
        }
        match rule.check {
            Check::AirlockChecksum => {
                return std::str::from_utf8(secret).is_ok_and(|s| airlock_token::check(s).is_ok());
            }
            Check::Crc32Base62 => return filters::crc32_base62_suffix_ok(secret),
            Check::Jwt => return filters::jwt_ok(secret) && !filters::is_placeholder(secret),
            Check::Generic => {
                // The cheaper tests first; all of them must pass, so the order does not
                // change the answer.
                if secret.len() > 200
                    || key.is_some_and(filters::key_is_hash_context)
                    || !filters::looks_random(secret, rule.min_entropy)
                    || filters::is_uuid(secret)
                    || filters::is_hash_encoding(secret)
                    || filters::is_base64_image(secret)
                    || (filters::is_digest_like(secret) && key.is_none())
                    || filters::is_placeholder(secret)
                    || filters::is_test_value(secret)
                {
                    return false;
                }
                return true;
            }
            Check::None => {}
        }
        if !rule.builtin {
            return filters::shannon_entropy(secret) >= rule.min_entropy;
        }
        if filters::is_placeholder(secret) || filters::is_base64_image(secret) {
            return false;
        }
        // Measure the random part: a long fixed prefix would dilute the entropy.
        let body = secret
            .iter()
            .rposition(|&c| c == b'_' || c == b'-')
            .filter(|&p| p < 24 && secret.len() - p > 16)
            .map_or(secret, |p| &secret[p + 1..]);
        filters::shannon_entropy(body) >= rule.min_entropy
    }
}

/// Keeps, among candidates covering the same bytes, the one of highest priority (valid first
/// on ties); then drops the invalid ones.
fn dedup(rules: &[Rule], mut cands: Vec<Candidate>) -> Vec<Candidate> {
    if cands.len() < 2 {
        cands.retain(|c| c.valid);
        return cands;
    }
    cands.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(rules[b.rule].priority.cmp(&rules[a.rule].priority))
            .then(b.valid.cmp(&a.valid))
            // Rule order, not the order in which the prefilter's groups reported them.
            .then(a.rule.cmp(&b.rule))
    });
    let mut kept: Vec<Candidate> = Vec::with_capacity(cands.len());
    for c in cands {
        match kept.last_mut() {
            Some(last) if c.start < last.end => {
                if rules[c.rule].priority > rules[last.rule].priority {
                    *last = c;
                }
            }
            _ => kept.push(c),
        }
    }
    kept.retain(|c| c.valid);
    kept
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

/// Splits a match of the generic rule (`key ["'\]]? \s* op \s* value`) into the key's and
/// the value's byte ranges, mirroring the regex so that no capture engine is needed.
pub(crate) fn split_assignment(m: &[u8]) -> Option<((usize, usize), (usize, usize))> {
    let key_end = m.iter().position(|&c| !is_key_byte(c))?;
    let mut p = key_end;
    if matches!(m.get(p), Some(b'"' | b'\'' | b']')) {
        p += 1;
    }
    let skip_ws = |mut p: usize| {
        while m.get(p).is_some_and(u8::is_ascii_whitespace) {
            p += 1;
        }
        p
    };
    let before_op = p;
    p = skip_ws(p);
    let rest = &m[p..];
    p += if rest.starts_with(b":=") || rest.starts_with(b"=>") {
        2
    } else if rest.starts_with(b"=") || rest.starts_with(b":") {
        1
    } else if p > before_op && rest.len() >= 5 && rest[..5].eq_ignore_ascii_case(b"value") {
        let q = skip_ws(p + 5);
        if m.get(q) != Some(&b'=') {
            return None;
        }
        q + 1 - p
    } else {
        return None;
    };
    p = skip_ws(p);
    let value = match m.get(p) {
        Some(b'"' | b'\'' | b'`') if m.len() >= p + 2 => (p + 1, m.len() - 1),
        Some(_) => (p, m.len()),
        None => return None,
    };
    Some(((0, key_end), value))
}

/// Cheap necessary condition for a generic assignment at a keyword ending at `end`: key
/// characters, an optional quote, blanks, then an assignment operator (or ` value=`).
fn assignment_follows(buf: &[u8], end: usize) -> bool {
    let mut p = end;
    let limit = (end + 128).min(buf.len());
    while p < limit && is_key_byte(buf[p]) {
        p += 1;
    }
    if p < limit && matches!(buf[p], b'"' | b'\'' | b']') {
        p += 1;
    }
    let ws = p;
    while p < limit && buf[p].is_ascii_whitespace() {
        p += 1;
    }
    match buf.get(p) {
        // Escaped quotes (`&quot;`, `\"`) are decoded later; let the window through.
        Some(b'=' | b':' | b'&' | b'\\') => true,
        Some(b'v' | b'V') => {
            p > ws && buf.len() >= p + 5 && buf[p..p + 5].eq_ignore_ascii_case(b"value")
        }
        _ => false,
    }
}

fn line_start(buf: &[u8], pos: usize) -> usize {
    let lo = pos.saturating_sub(LINE_REACH);
    memchr::memrchr(b'\n', &buf[lo..pos]).map_or(lo, |p| lo + p + 1)
}

fn line_end(buf: &[u8], pos: usize) -> usize {
    let hi = (pos + LINE_REACH).min(buf.len());
    memchr::memchr(b'\n', &buf[pos..hi]).map_or(hi, |p| pos + p)
}

/// Reads until `buf` holds `cap` bytes or the stream ends; true at end of stream. Grows the
/// buffer only as far as the data goes, so small streams never touch a full chunk of memory.
fn fill<R: Read>(r: &mut R, buf: &mut Vec<u8>, cap: usize) -> io::Result<bool> {
    let want = cap.saturating_sub(buf.len());
    let got = r.take(want as u64).read_to_end(buf)?;
    Ok(got < want)
}

/// Content sniffing: a NUL byte early on means binary (UTF-16 text included, knowingly).
pub fn is_binary(head: &[u8]) -> bool {
    memchr::memchr(0, &head[..head.len().min(SNIFF)]).is_some()
}

const _: () = assert!(OVERLAP > 2 * MAX_WINDOW);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fakes::fake;
    use proptest::prelude::*;

    #[test]
    fn airlock_s_own_key_file_is_found_by_its_name_and_shape() {
        let sc = Scanner::with_builtins().unwrap();
        let key = format!("{}\n", crate::fakes::fake_hex(7, 64));
        for file in ["home/airlock.key", "backup.zip!ops/airlock.key"] {
            let found = sc.scan_bytes(key.as_bytes(), &Origin::file(file));
            assert_eq!(found.len(), 1, "{file}");
            assert_eq!(found[0].rule_id, "airlock-master-key");
            let streamed = sc
                .scan_reader(key.as_bytes(), &Origin::file(file), true)
                .unwrap();
            assert_eq!(streamed.findings.len(), 1, "{file}");
        }
        // The same digits in another file, or a key file holding something else, are not it.
        assert!(sc
            .scan_bytes(key.as_bytes(), &Origin::file("notes.txt"))
            .is_empty());
        assert!(sc
            .scan_bytes(b"not a key\n", &Origin::file("airlock.key"))
            .is_empty());
    }

    /// Keywords in several cases, overlapping ones (`awsecret`), assignment shapes, the bytes
    /// the prechecks look for, escapes, and real-looking values, so that random texts hit
    /// every rule's windows, merges and edges.
    const PIECES: &[&str] = &[
        "token",
        "TOKEN",
        "Password",
        "pass",
        "passecret",
        "awsecret",
        "secret",
        "api_key",
        "Api-Key",
        "access-key",
        "AuthKey",
        "credentials",
        "pwd",
        "aws_secret_access_key",
        "_id",
        "x",
        ".",
        "-",
        " = ",
        "=",
        ": ",
        ":=",
        "=>",
        " value=",
        "\"",
        "'",
        "`",
        " ",
        "  ",
        "\n",
        "\x0b",
        ";",
        ",",
        "@",
        "(",
        "server=db;",
        "Host = h;",
        "User Id=sa;",
        "postgres://app:",
        "https://",
        "://",
        "hooks.slack.com",
        "sk_live_",
        "AKIA",
        "eyJ",
        "\\u0040",
        "&amp;",
        "&quot;",
        "\\\"",
        "Zq8rT2vLm9pXw4Kd",
        "k9Q2mX7vB3nL8pR4",
        "abc123XYZ",
        "é",
    ];

    fn text() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            8 => proptest::sample::select(PIECES).prop_map(|p| p.as_bytes().to_vec()),
            1 => (proptest::sample::select(crate::rules::BUILTIN), 1u64..50)
                .prop_map(|(r, seed)| fake(r.id, seed).unwrap_or_default().into_bytes()),
        ];
        proptest::collection::vec(piece, 0..120).prop_map(|v| v.concat())
    }

    fn found(s: &Scanner, t: &[u8]) -> Vec<(String, u64, u64, String)> {
        s.scan_bytes(t, &Origin::file("t"))
            .into_iter()
            .map(|f| (f.rule_id, f.line, f.column, f.fingerprint))
            .collect()
    }

    /// The scanner as built, one with no prechecks, one with the DFA prefilter only.
    fn scanners() -> &'static (Scanner, Scanner, Scanner) {
        static S: std::sync::OnceLock<(Scanner, Scanner, Scanner)> = std::sync::OnceLock::new();
        S.get_or_init(|| {
            let fast = Scanner::with_builtins().unwrap();
            let mut exhaustive = fast.clone();
            for r in &mut exhaustive.rules {
                r.needs = Needs::Nothing;
            }
            let mut dfa = fast.clone();
            for g in &mut dfa.groups {
                g.teddy = None;
            }
            (fast, exhaustive, dfa)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The prechecks are necessary conditions: skipping a regex never loses a finding.
        #[test]
        fn prechecks_lose_nothing(t in text()) {
            let (fast, exhaustive, _) = scanners();
            prop_assert_eq!(found(fast, &t), found(exhaustive, &t));
        }

        /// Teddy over the lowercased text reports exactly what the case-insensitive DFA
        /// reports over the text.
        #[test]
        fn teddy_on_lowercase_equals_case_insensitive_dfa(t in text()) {
            let (teddy, _, dfa) = scanners();
            prop_assert_eq!(found(teddy, &t), found(dfa, &t));
        }
    }
}
