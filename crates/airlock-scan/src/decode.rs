//! Decoding of JSON string escapes and HTML/XML entities before matching.
//!
//! Exports escape what people pasted: Slack writes `https:\/\/hooks.slack.com`, Confluence
//! writes `&quot;password&quot;`. A match found in decoded text must still be reported at the
//! right place in the original, so every decode keeps a map back to original offsets.

/// Decoded text with a map from its offsets back to the input's.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The decoded bytes.
    pub text: Vec<u8>,
    /// INVARIANT: sorted by decoded offset; `(decoded, original)` at the end of every escape.
    map: Vec<(usize, usize)>,
}

impl Decoded {
    /// Maps an offset in [`Decoded::text`] to the offset of the same byte in the input.
    pub fn to_original(&self, pos: usize) -> usize {
        let i = self.map.partition_point(|&(d, _)| d <= pos);
        if i == 0 {
            pos
        } else {
            let (d, o) = self.map[i - 1];
            o + (pos - d)
        }
    }
}

fn hex_val(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

fn hex4(s: &[u8]) -> Option<u32> {
    if s.len() < 4 {
        return None;
    }
    s[..4]
        .iter()
        .try_fold(0u32, |acc, &c| Some(acc * 16 + hex_val(c)?))
}

/// Tries to decode one JSON escape at `s[0] == b'\\'`; returns the bytes and the length consumed.
fn json_escape(s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let c = *s.get(1)?;
    let simple = match c {
        b'/' => Some(b'/'),
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        _ => None,
    };
    if let Some(b) = simple {
        out.push(b);
        return Some(2);
    }
    if c != b'u' {
        return None;
    }
    let hi = hex4(&s[2..])?;
    let (cp, used) = if (0xD800..0xDC00).contains(&hi) {
        // A surrogate pair: only decode it whole.
        if s.get(6) == Some(&b'\\') && s.get(7) == Some(&b'u') {
            let lo = hex4(&s[8..])?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12)
        } else {
            return None;
        }
    } else {
        (hi, 6)
    };
    let ch = char::from_u32(cp)?;
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    Some(used)
}

/// Tries to decode one entity at `s[0] == b'&'`; `&amp;` followed by an entity's name decodes
/// both levels at once, which keeps the offset map exact.
fn html_entity(s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    if s.starts_with(b"&amp;") && s.len() > 5 && s[5] != b'&' {
        let mut inner = Vec::with_capacity(4);
        let mut probe = Vec::with_capacity(16);
        probe.push(b'&');
        probe.extend_from_slice(&s[5..s.len().min(5 + 12)]);
        if let Some(n) = html_entity_one(&probe, &mut inner) {
            out.extend_from_slice(&inner);
            return Some(4 + n);
        }
    }
    html_entity_one(s, out)
}

fn html_entity_one(s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let end = s.iter().take(12).position(|&c| c == b';')?;
    let name = &s[1..end];
    let ch: char = match name {
        b"amp" => '&',
        b"lt" => '<',
        b"gt" => '>',
        b"quot" => '"',
        b"apos" => '\'',
        b"nbsp" => ' ',
        b"sol" => '/',
        b"colon" => ':',
        b"equals" => '=',
        _ if name.first() == Some(&b'#') => {
            let n = &name[1..];
            let v = if n.first() == Some(&b'x') || n.first() == Some(&b'X') {
                u32::from_str_radix(std::str::from_utf8(&n[1..]).ok()?, 16).ok()?
            } else {
                std::str::from_utf8(n).ok()?.parse::<u32>().ok()?
            };
            char::from_u32(v)?
        }
        _ => return None,
    };
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    Some(end + 1)
}

fn decode_once(input: &[u8]) -> Option<Decoded> {
    let mut text = Vec::with_capacity(input.len());
    let mut map = Vec::new();
    let mut i = 0;
    let mut changed = false;
    while i < input.len() {
        let Some(off) = memchr::memchr2(b'\\', b'&', &input[i..]) else {
            text.extend_from_slice(&input[i..]);
            break;
        };
        text.extend_from_slice(&input[i..i + off]);
        i += off;
        let used = if input[i] == b'\\' {
            json_escape(&input[i..], &mut text)
        } else {
            html_entity(&input[i..], &mut text)
        };
        match used {
            Some(n) => {
                i += n;
                changed = true;
                map.push((text.len(), i));
            }
            None => {
                text.push(input[i]);
                i += 1;
            }
        }
    }
    changed.then_some(Decoded { text, map })
}

/// Decodes JSON escapes and HTML entities (double-escaped ones such as `&amp;quot;` too, as
/// Confluence writes them); `None` when the input has nothing to decode.
pub fn decode(input: &[u8]) -> Option<Decoded> {
    decode_once(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn json_escapes_decode() {
        let d = decode(br#"https:\/\/hooks.slack.com\/services"#).unwrap();
        assert_eq!(d.text, b"https://hooks.slack.com/services");
        let d = decode(br"\u0061\u00e9\ud83d\ude00").unwrap();
        assert_eq!(String::from_utf8(d.text).unwrap(), "a\u{e9}\u{1F600}");
    }

    #[test]
    fn entities_decode_twice_and_map_back() {
        let src = b"x &amp;quot;pw&amp;quot; y";
        let d = decode(src).unwrap();
        assert_eq!(d.text, b"x \"pw\" y");
        let pos = d.text.iter().position(|&c| c == b'p').unwrap();
        assert_eq!(src[d.to_original(pos)], b'p');
        let y = d.text.len() - 1;
        assert_eq!(src[d.to_original(y)], b'y');
    }

    #[test]
    fn nothing_to_decode_is_none() {
        assert!(decode(b"plain text & more \\q").is_none());
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_maps_inside_input(s in proptest::collection::vec(proptest::sample::select(b"\\u0123456789abcdefxX&#;amplquotnbsp /\"".to_vec()), 0..200)) {
            if let Some(d) = decode(&s) {
                prop_assert!(d.text.len() <= s.len());
                for p in 0..d.text.len() {
                    prop_assert!(d.to_original(p) < s.len() + 1);
                }
            }
        }

        #[test]
        fn plain_ascii_maps_to_itself(prefix in "[a-z ]{0,20}", suffix in "[a-z ]{0,20}") {
            let s = format!("{prefix}&amp;{suffix}");
            let d = decode(s.as_bytes()).unwrap();
            let n = d.text.len();
            for k in 0..suffix.len() {
                let p = n - suffix.len() + k;
                prop_assert_eq!(s.as_bytes()[d.to_original(p)], d.text[p]);
            }
        }
    }
}
