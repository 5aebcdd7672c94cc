//! Approval identifiers: `apr_` and 16 hex digits (64 random bits).

/// The operating system's random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// The prefix every approval id starts with, so an id says what it names in logs and URLs.
pub const APPROVAL_ID_PREFIX: &str = "apr_";

/// Makes a new approval id, `apr_` followed by 16 lowercase hex digits from the OS generator.
pub fn new_approval_id() -> Result<String, RandomError> {
    let mut raw = [0u8; 8];
    getrandom::getrandom(&mut raw).map_err(|_| RandomError)?;
    Ok(format!("{APPROVAL_ID_PREFIX}{}", hex::encode(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_prefix_sixteen_hex_digits_and_differ() {
        let a = new_approval_id().unwrap();
        let b = new_approval_id().unwrap();
        assert_ne!(a, b);
        for id in [&a, &b] {
            let rest = id.strip_prefix("apr_").unwrap();
            assert_eq!(rest.len(), 16);
            assert!(rest
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        }
    }
}
