//! The operation digest an approval is bound to.
//!
//! An approval grants one operation, not a time window: the gateway computes this digest for the
//! request that needed approval, the store keeps it with the approval, and the retried request
//! only passes if it computes to the same digest. Every field is length-prefixed, so no two
//! different field lists share an encoding (`("ab", "c")` and `("a", "bc")` differ), and the
//! input starts with a version tag so a future layout cannot collide with this one.

use sha2::{Digest, Sha256};

/// The domain separation tag hashed first; bump it when the field list changes.
pub const DIGEST_DOMAIN: &str = "airlock-approval-v1";

/// Hex SHA-256 over the domain tag and the length-prefixed fields of one operation.
///
/// `method_or_kind` is the HTTP method or the operation kind (e.g. a SQL statement class);
/// `normalized_path_or_fingerprint` is the normalized HTTP path or a statement fingerprint;
/// `body` is the exact request body the approval covers.
pub fn operation_digest(
    principal: &str,
    token_identity_kind: &str,
    resource: &str,
    environment: &str,
    method_or_kind: &str,
    normalized_path_or_fingerprint: &str,
    body: &[u8],
) -> String {
    let mut h = Sha256::new();
    for field in [
        DIGEST_DOMAIN.as_bytes(),
        principal.as_bytes(),
        token_identity_kind.as_bytes(),
        resource.as_bytes(),
        environment.as_bytes(),
        method_or_kind.as_bytes(),
        normalized_path_or_fingerprint.as_bytes(),
        body,
    ] {
        // u64 big-endian lengths: fixed width, so the encoding is prefix-free
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn digest_of(f: &[Vec<u8>; 7]) -> String {
        let s = |i: usize| String::from_utf8_lossy(&f[i]).into_owned();
        operation_digest(&s(0), &s(1), &s(2), &s(3), &s(4), &s(5), &f[6])
    }

    #[test]
    fn a_known_input_has_a_stable_digest() {
        let d = operation_digest(
            "alice",
            "agent",
            "db:prod",
            "production",
            "POST",
            "/v1/users",
            b"{}",
        );
        assert_eq!(d.len(), 64);
        assert_eq!(
            d,
            operation_digest(
                "alice",
                "agent",
                "db:prod",
                "production",
                "POST",
                "/v1/users",
                b"{}"
            )
        );
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_digest() {
        let a = operation_digest("ab", "c", "r", "e", "m", "p", b"");
        let b = operation_digest("a", "bc", "r", "e", "m", "p", b"");
        assert_ne!(a, b);
        let c = operation_digest("p", "k", "r", "e", "m", "/x", b"y");
        let d = operation_digest("p", "k", "r", "e", "m", "/xy", b"");
        assert_ne!(c, d);
    }

    proptest! {
        #[test]
        fn changing_any_field_changes_the_digest(
            fields in proptest::array::uniform7(proptest::collection::vec(0x20u8..0x7f, 0..24)),
            which in 0usize..7,
            extra in 0x20u8..0x7f,
        ) {
            let before = digest_of(&fields);
            let mut changed = fields.clone();
            changed[which].push(extra);
            prop_assert_ne!(before.clone(), digest_of(&changed));
            // also a change that keeps the length
            let mut flipped = fields.clone();
            if let Some(first) = flipped[which].first_mut() {
                *first = if *first == b'a' { b'b' } else { b'a' };
                prop_assert_ne!(before, digest_of(&flipped));
            }
        }
    }
}
