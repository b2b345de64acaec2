//! Encryption of personal data at rest: XChaCha20-Poly1305 with a random 192-bit nonce per value
//! (so equal values never look equal, unlike the original's AES/ECB), bound by associated data
//! to the row and column it belongs to, and tagged with a key id so keys can be rotated.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("stored value was sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("stored value is malformed or does not belong to this row")]
    Corrupt,
    /// A value without the sealed format: personal data is never stored in the clear, so one
    /// found there was planted (or predates sealing and was missed by the start-up step).
    #[error("stored value is not sealed")]
    Unsealed,
}

/// The data keys: the current one seals, every configured one opens.
pub struct DataCipher {
    current: (String, XChaCha20Poly1305),
    others: HashMap<String, XChaCha20Poly1305>,
    /// The key of `lookup_hash`, derived from the current data key.
    lookup_key: Zeroizing<[u8; 32]>,
    /// The lookup keys of the previous data keys, by key id, so that `lookup_hash_matches`
    /// recognises a hash made before a rotation.
    previous_lookup_keys: HashMap<String, Zeroizing<[u8; 32]>>,
    /// The current data key, from which `subkey` derives keys for other purposes.
    current_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DataCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material never reaches a log line.
        f.debug_struct("DataCipher")
            .field("current", &self.current.0)
            .field("others", &self.others.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Parses a 32-byte key written as base64 (or 64 hex digits). The key, and every copy made on
/// the way, is wiped from memory when dropped.
pub fn parse_key(text: &str) -> Result<Zeroizing<[u8; 32]>, String> {
    let text = text.trim();
    let bytes = Zeroizing::new(
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| "not hex".to_owned())?
        } else {
            B64.decode(text).map_err(|_| {
                "a data key must be 32 bytes written as base64 (or 64 hex digits)".to_owned()
            })?
        },
    );
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != key.len() {
        return Err("a data key must be exactly 32 bytes (base64 of 32 random bytes)".to_owned());
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// A fresh random key, base64-encoded.
pub fn generate_key() -> String {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(key.as_mut());
    B64.encode(key.as_ref())
}

fn key_id(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..4])
}

/// HMAC-SHA256 of `parts` (concatenated) under `key`.
pub(crate) fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC pads a key shorter than the hash block (64 bytes) with zeros: padding it here gives
    // the same MAC through the infallible constructor. The padded copy is wiped after use.
    let mut block = Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key);
    let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new(&(*block).into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The keyed digest behind `lookup_hash`: the context's length, the context, then the value.
fn keyed_digest(key: &[u8; 32], value: &str, context: &str) -> [u8; 32] {
    hmac(
        key,
        &[
            &(context.len() as u64).to_be_bytes(),
            context.as_bytes(),
            value.as_bytes(),
        ],
    )
}

/// The lookup-hash key: HMAC of a fixed label under the data key (HKDF-Expand with one block),
/// so it is independent of the sealing key although derived from it.
fn lookup_key(data_key: &[u8; 32]) -> [u8; 32] {
    hmac(data_key, &[b"participants lookup-hash key v1", &[1]])
}

impl DataCipher {
    /// `current` seals new values; `previous` keys still open what they sealed. The keys are
    /// borrowed, so no copy is left behind; the cipher wipes its own when dropped.
    pub fn new<'a>(current: &[u8; 32], previous: impl IntoIterator<Item = &'a [u8; 32]>) -> Self {
        let mut others = HashMap::new();
        let mut previous_lookup_keys = HashMap::new();
        for key in previous {
            others.insert(key_id(key), XChaCha20Poly1305::new(key.into()));
            previous_lookup_keys.insert(key_id(key), Zeroizing::new(lookup_key(key)));
        }
        Self {
            current: (key_id(current), XChaCha20Poly1305::new(current.into())),
            others,
            lookup_key: Zeroizing::new(lookup_key(current)),
            previous_lookup_keys,
            current_key: Zeroizing::new(*current),
        }
    }

    /// Whether `stored` has the sealed format (it may still fail to open).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// A keyed hash of `value` for equality lookups and unique indexes over sealed values:
    /// `<key id>:<hex HMAC-SHA256>`, under a key derived from the current data key, with
    /// `context` (the table, scope and column) hashed in so equal values in other places differ.
    ///
    /// Key rotation changes the hash: a value hashed under a previous key has that key's id as
    /// prefix and no longer matches. Whoever relies on the hash for uniqueness re-hashes the
    /// stored values under the new key before serving (`Store::seal_access_codes` does so for
    /// access codes at start-up); until then equal values under different keys are not detected.
    pub fn lookup_hash(&self, value: &str, context: &str) -> String {
        format!(
            "{}:{}",
            self.current.0,
            hex::encode(keyed_digest(&self.lookup_key, value, context))
        )
    }

    /// Whether `stored` is `lookup_hash(value, context)` under the current data key or under
    /// one of the previous ones (so a hash stored before a rotation still matches); `None` when
    /// it was made under a key this cipher does not have, so that it cannot tell.
    pub fn lookup_hash_matches(&self, stored: &str, value: &str, context: &str) -> Option<bool> {
        let (kid, digest) = stored.split_once(':')?;
        let key = if kid == self.current.0 {
            &self.lookup_key
        } else {
            self.previous_lookup_keys.get(kid)?
        };
        Some(hex::encode(keyed_digest(key, value, context)) == digest)
    }

    /// Whether `stored` was made by `lookup_hash` under the current key.
    pub fn is_current_lookup_hash(&self, stored: &str) -> bool {
        stored
            .split_once(':')
            .is_some_and(|(kid, _)| kid == self.current.0)
    }

    /// A key for `purpose` derived from the current data key (HKDF-Expand with one block, as
    /// the lookup key), independent of the sealing key and of other purposes.
    pub fn subkey(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(hmac(
            &self.current_key,
            &[b"participants subkey v1: ", purpose.as_bytes(), &[1]],
        ))
    }

    /// The id of the key that seals new values (a hash prefix, not the key).
    pub fn current_key_id(&self) -> &str {
        &self.current.0
    }

    /// The ids of the previous keys (which open, never seal), in a stable order.
    pub fn previous_key_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.others.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    fn cipher(&self, kid: &str) -> Option<&XChaCha20Poly1305> {
        if kid == self.current.0 {
            Some(&self.current.1)
        } else {
            self.others.get(kid)
        }
    }

    /// Seals `value`, bound to `context` (the row and column it is stored in).
    pub fn seal(&self, value: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .current
            .1
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            // Encryption of an in-memory buffer cannot fail for XChaCha20-Poly1305.
            .unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.current.0, B64.encode(blob))
    }

    /// Opens a value sealed by `seal` with the same `context`. A value without the sealed
    /// format is refused (`Unsealed`): a value planted in the database in the clear would
    /// otherwise bypass the binding to its row and column.
    pub fn open(&self, stored: &str, context: &str) -> Result<String, CryptoError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Err(CryptoError::Unsealed);
        };
        let (kid, b64) = rest.split_once(':').ok_or(CryptoError::Corrupt)?;
        let cipher = self
            .cipher(kid)
            .ok_or_else(|| CryptoError::UnknownKey(kid.to_owned()))?;
        let blob = B64.decode(b64).map_err(|_| CryptoError::Corrupt)?;
        if blob.len() < NONCE_LEN {
            return Err(CryptoError::Corrupt);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Corrupt)?;
        let plain = cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Corrupt)
    }

    pub fn seal_opt(&self, value: Option<&str>, context: &str) -> Option<String> {
        value.map(|v| self.seal(v, context))
    }

    pub fn open_opt(
        &self,
        stored: Option<&str>,
        context: &str,
    ) -> Result<Option<String>, CryptoError> {
        stored.map(|v| self.open(v, context)).transpose()
    }

    /// Seals bytes (stored as the text form, as bytes).
    pub fn seal_bytes(&self, value: &[u8], context: &str) -> Vec<u8> {
        self.seal(&B64.encode(value), context).into_bytes()
    }

    /// Opens bytes sealed by `seal_bytes`; anything else is refused, as by `open`.
    pub fn open_bytes(&self, stored: &[u8], context: &str) -> Result<Vec<u8>, CryptoError> {
        let text = std::str::from_utf8(stored).map_err(|_| CryptoError::Unsealed)?;
        B64.decode(self.open(text, context)?)
            .map_err(|_| CryptoError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn sealing_is_randomised_and_bound_to_its_context() {
        let c = DataCipher::new(&key(1), &[]);
        let a = c.seal("Ada", "participant_contacts/1/first_name");
        let b = c.seal("Ada", "participant_contacts/1/first_name");
        assert_ne!(a, b, "equal values never look equal");
        assert!(!a.contains("Ada"));
        assert_eq!(
            c.open(&a, "participant_contacts/1/first_name").unwrap(),
            "Ada"
        );
        assert!(matches!(
            c.open(&a, "participant_contacts/2/first_name"),
            Err(CryptoError::Corrupt)
        ));
        // A value in the clear is refused, not passed through.
        assert!(matches!(
            c.open("planted plain", "participant_contacts/1/first_name"),
            Err(CryptoError::Unsealed)
        ));
        assert!(matches!(
            c.open_bytes(b"planted plain", "x"),
            Err(CryptoError::Unsealed)
        ));
        assert!(matches!(
            c.open_bytes(&[0xff, 0xfe], "x"),
            Err(CryptoError::Unsealed)
        ));
    }

    #[test]
    fn previous_keys_open_and_unknown_keys_are_named() {
        let old = DataCipher::new(&key(1), &[]);
        let sealed = old.seal("ОНІО", "ctx");
        let rotated = DataCipher::new(&key(2), &[key(1)]);
        assert_eq!(rotated.open(&sealed, "ctx").unwrap(), "ОНІО");
        assert_eq!(rotated.previous_key_ids(), vec![old.current_key_id()]);
        let other = DataCipher::new(&key(3), &[]);
        assert!(matches!(
            other.open(&sealed, "ctx"),
            Err(CryptoError::UnknownKey(_))
        ));
        let bytes = rotated.seal_bytes(&[0, 1, 2, 255], "blob");
        assert_eq!(
            rotated.open_bytes(&bytes, "blob").unwrap(),
            vec![0, 1, 2, 255]
        );
    }

    #[test]
    fn lookup_hashes_are_keyed_and_bound_to_their_context() {
        let c = DataCipher::new(&key(1), &[]);
        let h = c.lookup_hash("ABCDEFGH2", "participants/1/access_code");
        assert_eq!(h, c.lookup_hash("ABCDEFGH2", "participants/1/access_code"));
        assert!(!h.contains("ABCDEFGH2"));
        assert!(c.is_current_lookup_hash(&h));
        assert_ne!(h, c.lookup_hash("ABCDEFGH2", "participants/2/access_code"));
        assert_ne!(h, c.lookup_hash("ABCDEFGH3", "participants/1/access_code"));
        let rotated = DataCipher::new(&key(2), &[key(1)]);
        assert!(!rotated.is_current_lookup_hash(&h));
        assert_ne!(
            h,
            rotated.lookup_hash("ABCDEFGH2", "participants/1/access_code")
        );
        // Not the plain SHA-256 of the value: without the key the hash cannot be brute-forced.
        assert!(!h.ends_with(&hex::encode(Sha256::digest(b"ABCDEFGH2"))));
    }

    #[test]
    fn keys_parse_from_base64_or_hex() {
        let k = generate_key();
        assert_eq!(parse_key(&k).unwrap().len(), 32);
        assert!(parse_key(&B64.encode([1u8; 31])).is_err());
        assert!(parse_key(&B64.encode([1u8; 33])).is_err());
        assert!(parse_key(&"ab".repeat(32)).is_ok());
        assert!(parse_key("short").is_err());
    }
}
