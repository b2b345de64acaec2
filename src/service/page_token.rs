//! Opaque, tamper-proof page tokens for keyset paging: a version byte, a short fingerprint of
//! the query the token belongs to, the cursor (the last key served), and an HMAC-SHA256 over
//! all of it under a key derived from the data key. URL-safe base64 without padding.
//!
//! The query binding (scope, filters, user) is hashed, not carried: a token reveals nothing of
//! the query, and one presented with another query (another scope, filter or user) is refused.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use sha2::{Digest, Sha256};

use crate::crypto::DataCipher;

const VERSION: u8 = 1;
const FINGERPRINT_LEN: usize = 8;
const MAC_LEN: usize = 16;
const TOKEN_LEN: usize = 1 + FINGERPRINT_LEN + 8 + MAC_LEN;

/// Why a token was refused. The messages name no value of the token or the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    #[error("page_token is not a token this service issued")]
    Malformed,
    #[error("page_token was issued by an unknown version of this service")]
    Version,
    #[error(
        "page_token belongs to another query: keep scope, filters and user unchanged between pages"
    )]
    OtherQuery,
    #[error("page_token was altered or forged")]
    Forged,
}

/// What a token is bound to: the parts of a query, hashed with their lengths so that
/// moving text from one part to the next changes the binding.
#[derive(Debug, Default, Clone)]
pub struct Binding(Sha256);

impl Binding {
    /// `kind` names the listing (e.g. `audit_events`), so tokens never cross listings.
    pub fn new(kind: &str) -> Self {
        Self(Sha256::new()).part(kind)
    }

    pub fn part(mut self, value: &str) -> Self {
        self.0.update((value.len() as u64).to_be_bytes());
        self.0.update(value.as_bytes());
        self
    }

    pub fn opt(self, value: Option<&str>) -> Self {
        match value {
            None => self.part("\u{0}none"),
            Some(v) => self.part("\u{0}some").part(v),
        }
    }

    fn digest(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The page size a listing serves for a requested `page_size` (AIP-158): 0 is `default`, more
/// than `max` is `max`, a negative size is refused.
pub fn page_size(
    requested: i32,
    default: u32,
    max: u32,
) -> Result<u32, crate::domain::ServiceError> {
    match u32::try_from(requested) {
        Ok(0) => Ok(default),
        Ok(n) => Ok(n.min(max)),
        Err(_) => Err(crate::domain::ServiceError::rejected(
            crate::domain::Reason::InvalidPageSize,
            "page_size must not be negative",
        )),
    }
}

/// Issues and checks page tokens.
#[derive(Clone)]
pub struct PageTokens {
    key: zeroize::Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(..)")
    }
}

impl PageTokens {
    pub fn new(cipher: &DataCipher) -> Self {
        Self {
            key: cipher.subkey("page tokens"),
        }
    }

    fn mac(&self, body: &[u8], binding: &[u8; 32]) -> [u8; MAC_LEN] {
        let full = crate::crypto::hmac(&self.key, &[binding, body]);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// A token that resumes the query bound by `binding` after `cursor`.
    pub fn issue(&self, binding: Binding, cursor: i64) -> String {
        let binding = binding.digest();
        let mut token = Vec::with_capacity(TOKEN_LEN);
        token.push(VERSION);
        token.extend_from_slice(&binding[..FINGERPRINT_LEN]);
        token.extend_from_slice(&cursor.to_be_bytes());
        let mac = self.mac(&token, &binding);
        token.extend_from_slice(&mac);
        B64.encode(token)
    }

    /// The cursor of a token issued for the query bound by `binding`.
    pub fn open(&self, token: &str, binding: Binding) -> Result<i64, PageTokenError> {
        let bytes = B64
            .decode(token.as_bytes())
            .map_err(|_| PageTokenError::Malformed)?;
        if bytes.first().is_some_and(|v| *v != VERSION) {
            return Err(PageTokenError::Version);
        }
        if bytes.len() != TOKEN_LEN {
            return Err(PageTokenError::Malformed);
        }
        let binding = binding.digest();
        let (body, mac) = bytes.split_at(TOKEN_LEN - MAC_LEN);
        let expected = self.mac(body, &binding);
        // Constant-time comparison of the tag.
        let same = mac
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if !same {
            return Err(
                if body[1..1 + FINGERPRINT_LEN] != binding[..FINGERPRINT_LEN] {
                    PageTokenError::OtherQuery
                } else {
                    PageTokenError::Forged
                },
            );
        }
        let mut cursor = [0u8; 8];
        cursor.copy_from_slice(&body[1 + FINGERPRINT_LEN..]);
        Ok(i64::from_be_bytes(cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(key: u8) -> PageTokens {
        PageTokens::new(&DataCipher::new(&[key; 32], &[]))
    }

    fn query(site: &str) -> Binding {
        Binding::new("audit_events")
            .part("dm.juno")
            .part("S_JUNO")
            .opt(Some(site))
    }

    #[test]
    fn a_token_resumes_its_own_query() {
        let t = tokens(1);
        let token = t.issue(query("S_OHIO"), 42);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "URL-safe: {token}"
        );
        assert_eq!(t.open(&token, query("S_OHIO")), Ok(42));
        assert_eq!(
            t.open(&t.issue(query("S_OHIO"), -1), query("S_OHIO")),
            Ok(-1)
        );
    }

    #[test]
    fn a_token_of_another_scope_or_user_is_refused() {
        let t = tokens(1);
        let token = t.issue(query("S_OHIO"), 42);
        assert_eq!(
            t.open(&token, query("S_TEXAS")),
            Err(PageTokenError::OtherQuery)
        );
        let other_user = Binding::new("audit_events")
            .part("monitor.juno")
            .part("S_JUNO")
            .opt(Some("S_OHIO"));
        assert_eq!(t.open(&token, other_user), Err(PageTokenError::OtherQuery));
        // Moving text between parts is another query.
        let shifted = Binding::new("audit_events")
            .part("dm.junoS")
            .part("_JUNO")
            .opt(Some("S_OHIO"));
        assert_eq!(t.open(&token, shifted), Err(PageTokenError::OtherQuery));
        assert_eq!(
            t.open(&token, Binding::new("participants").part("dm.juno")),
            Err(PageTokenError::OtherQuery)
        );
    }

    #[test]
    fn an_altered_or_forged_token_is_refused() {
        let t = tokens(1);
        let token = t.issue(query("S_OHIO"), 42);
        let mut bytes = B64.decode(&token).unwrap();
        // Another cursor, same fingerprint and tag.
        bytes[1 + FINGERPRINT_LEN + 7] ^= 1;
        assert_eq!(
            t.open(&B64.encode(&bytes), query("S_OHIO")),
            Err(PageTokenError::Forged)
        );
        // A token made under another key (a forger without ours).
        let forged = tokens(2).issue(query("S_OHIO"), 7);
        assert_eq!(
            t.open(&forged, query("S_OHIO")),
            Err(PageTokenError::Forged)
        );
        assert_eq!(t.open("", query("S_OHIO")), Err(PageTokenError::Malformed));
        assert_eq!(
            t.open("not base64!", query("S_OHIO")),
            Err(PageTokenError::Malformed)
        );
        assert_eq!(
            t.open(&token[..token.len() - 4], query("S_OHIO")),
            Err(PageTokenError::Malformed)
        );
        let mut v2 = B64.decode(&token).unwrap();
        v2[0] = 2;
        assert_eq!(
            t.open(&B64.encode(&v2), query("S_OHIO")),
            Err(PageTokenError::Version)
        );
    }
}
