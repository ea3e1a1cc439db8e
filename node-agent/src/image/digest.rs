//! `sha256:<hex>` digests, checked before their hex is ever used in a path.

use std::fmt;

/// A validated `sha256:` digest: exactly 64 lowercase hex digits, so its
/// hex part is safe to use as a file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(String);

impl Sha256 {
    /// Parses `sha256:<64 lowercase hex>`; other algorithms are refused.
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(format!("digest {s:?} is not sha256"));
        };
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("digest {s:?} is not 64 lowercase hex digits"));
        }
        Ok(Sha256(s.to_owned()))
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits alone.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub(crate) fn from_ring(d: ring::digest::Digest) -> Self {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in d.as_ref() {
            s.push_str(&format!("{b:02x}"));
        }
        Sha256(s)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The sha256 digest of `bytes`.
pub fn sha256_of(bytes: &[u8]) -> Sha256 {
    Sha256::from_ring(ring::digest::digest(&ring::digest::SHA256, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_sha256_digests_are_accepted() {
        let good = format!("sha256:{}", "0a".repeat(32));
        assert_eq!(Sha256::parse(&good).unwrap().hex(), "0a".repeat(32));
        for bad in [
            format!("sha512:{}", "0a".repeat(32)),
            format!("sha256:{}", "0A".repeat(32)),
            format!("sha256:{}", "0a".repeat(31)),
            format!("sha256:../../{}", "0a".repeat(29)),
            "sha256:".to_owned(),
            "".to_owned(),
        ] {
            assert!(Sha256::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(
            sha256_of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
