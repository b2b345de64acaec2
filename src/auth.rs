//! Bearer-token authentication, shared by the gRPC and REST edges. Verification sits behind
//! `TokenVerifier`; the handlers only see the resulting `Caller`.

use std::{
    collections::{HashMap, HashSet},
    sync::{PoisonError, RwLock},
};

use crate::service::Caller;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};

/// Minimum length of the HS256 development secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Why a token was refused. Logged at debug level; never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no authorization metadata")]
    Missing,
    #[error("authorization metadata is not a bearer token")]
    NotBearer,
    #[error("token refused: {0}")]
    Invalid(String),
    #[error("token has no user claim")]
    NoUser,
    #[error("the token's user claim is too long or holds control or format characters")]
    BadUser,
    #[error("more than one authorization header")]
    Repeated,
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
}

/// Turns a bearer token into the caller.
pub trait TokenVerifier: Send + Sync + 'static {
    fn verify(&self, token: &str) -> Result<Caller, AuthError>;
}

/// JWT settings (SPEC section 3).
#[derive(Debug, Clone, Default)]
pub struct JwtSettings {
    /// Development key: HS256 tokens without a `kid` (never printed, wiped on drop).
    pub hs256_secret: Option<SecretSlice<u8>>,
    /// Production keys: a JWKS file of RS256 / ES256 public keys, chosen by the token's `kid`.
    pub jwks_file: Option<std::path::PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// Verifies JWTs with an explicit algorithm allow-list: HS256 with the development secret,
/// RS256 and ES256 with the JWKS keys. The key is picked by the server's configuration and the
/// token's `kid`, never fetched from a URL the token names.
pub struct JwtVerifier {
    hs256: Option<DecodingKey>,
    jwks_file: Option<std::path::PathBuf>,
    jwks: RwLock<KeyMap>,
    validation: Validation,
}

#[derive(Debug, Deserialize)]
struct UserClaims {
    sub: Option<String>,
    preferred_username: Option<String>,
    /// Required and checked by the validation; kept so that a long call ends with its token.
    exp: Option<i64>,
}

/// Longest bearer token accepted, in bytes; longer ones are refused as UNAUTHENTICATED.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest user name a token may carry, in characters.
pub const MAX_USER_CHARS: usize = 255;

type KeyMap = HashMap<String, (Algorithm, DecodingKey)>;

/// The usable signing keys of a JWKS file, and one line per key that was skipped.
struct LoadedJwks {
    keys: KeyMap,
    skipped: Vec<String>,
}

impl LoadedJwks {
    /// Logs each skipped key: its position, kid, kty, alg and use — never key material.
    fn log_skipped(&self, path: &std::path::Path, at_start: bool) {
        for line in &self.skipped {
            if at_start {
                tracing::info!(file = %path.display(), "JWKS key skipped: {line}");
            } else {
                tracing::debug!(file = %path.display(), "JWKS key skipped: {line}");
            }
        }
    }
}

/// A printable, bounded form of a JWK member for a log line.
fn member(key: &serde_json::Value, name: &str) -> String {
    match key.get(name).and_then(serde_json::Value::as_str) {
        Some(v) => {
            let v: String = v
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            format!("{v:?}")
        }
        None => "none".to_owned(),
    }
}

/// Chooses the algorithm of a signing key, or says why the key is not one we use.
fn signing_algorithm(jwk: &Jwk) -> Result<Algorithm, &'static str> {
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return Err("not a signing key (use is not \"sig\")"),
    }
    match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_)) => Ok(Algorithm::RS256),
        (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(ec))
            if ec.curve == EllipticCurve::P256 =>
        {
            Ok(Algorithm::ES256)
        }
        (None, AlgorithmParameters::RSA(_)) => Ok(Algorithm::RS256),
        (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P256 => {
            Ok(Algorithm::ES256)
        }
        _ => Err("not an RS256 or ES256 public key"),
    }
}

/// Loads the RS256 and ES256 signing keys of a JWKS file, by `kid`. Identity providers list
/// other keys beside them (encryption keys, symmetric keys, keys without a kid, algorithms
/// this service does not accept): those are skipped, each with a reason. A file that cannot be
/// read or parsed, or that has no usable key, is an error.
fn load_jwks(path: &std::path::Path) -> Result<LoadedJwks, String> {
    let what = format!("JWKS file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| format!("{what}: {e}"))?;
    let set: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{what}: {e}"))?;
    let Some(list) = set.get("keys").and_then(serde_json::Value::as_array) else {
        return Err(format!("{what}: no \"keys\" array"));
    };
    let mut keys = HashMap::new();
    let mut skipped = Vec::new();
    for (index, value) in list.iter().enumerate() {
        let describe = |why: &str| {
            format!(
                "key #{index} (kid {}, kty {}, alg {}, use {}): {why}",
                member(value, "kid"),
                member(value, "kty"),
                member(value, "alg"),
                member(value, "use"),
            )
        };
        // One key at a time, so a key type the library does not know skips only that key.
        let jwk: Jwk = match serde_json::from_value(value.clone()) {
            Ok(jwk) => jwk,
            Err(_) => {
                skipped.push(describe("not a key type or algorithm this service reads"));
                continue;
            }
        };
        let Some(kid) = jwk.common.key_id.clone().filter(|k| !k.is_empty()) else {
            skipped.push(describe("no kid, so no token can name it"));
            continue;
        };
        let alg = match signing_algorithm(&jwk) {
            Ok(alg) => alg,
            Err(why) => {
                skipped.push(describe(why));
                continue;
            }
        };
        let key = match DecodingKey::from_jwk(&jwk) {
            Ok(key) => key,
            Err(_) => {
                skipped.push(describe("the key cannot be read"));
                continue;
            }
        };
        if keys.contains_key(&kid) {
            skipped.push(describe("an earlier key has the same kid"));
            continue;
        }
        keys.insert(kid, (alg, key));
    }
    if keys.is_empty() {
        return Err(format!(
            "{what}: no usable signing key (RS256 or ES256 with a kid) among {} keys",
            list.len()
        ));
    }
    Ok(LoadedJwks { keys, skipped })
}

/// Whether a user name may name a caller: not empty, not too long, and free of control and
/// format characters and line separators, which could forge or hide log lines.
fn is_acceptable_user(user: &str) -> bool {
    !user.is_empty()
        && user.chars().count() <= MAX_USER_CHARS
        && !user
            .chars()
            .any(|c| c.is_control() || is_format_or_separator(c))
}

/// Unicode general category Cf (format), plus the line and paragraph separators (Zl, Zp).
fn is_format_or_separator(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

impl JwtVerifier {
    pub fn new(settings: &JwtSettings) -> Result<Self, String> {
        let hs256 = match settings.hs256_secret.as_ref().map(|s| s.expose_secret()) {
            Some(secret) if secret.len() < MIN_SECRET_LEN => {
                return Err(format!(
                    "PARTICIPANTS_JWT_HS256_SECRET must be at least {MIN_SECRET_LEN} bytes"
                ));
            }
            Some(secret) => Some(DecodingKey::from_secret(secret)),
            None => None,
        };
        let jwks = match &settings.jwks_file {
            Some(path) => {
                let loaded = load_jwks(path)?;
                loaded.log_skipped(path, true);
                loaded.keys
            }
            None => HashMap::new(),
        };
        if hs256.is_none() && jwks.is_empty() {
            return Err(
                "no token key: set PARTICIPANTS_JWT_HS256_SECRET (development) or PARTICIPANTS_JWT_JWKS_FILE"
                    .to_owned(),
            );
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required: HashSet<String> = HashSet::from(["exp".to_owned()]);
        match &settings.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.insert("iss".to_owned());
            }
            None => validation.iss = None,
        }
        match &settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        validation.required_spec_claims = required;
        Ok(Self {
            hs256,
            jwks_file: settings.jwks_file.clone(),
            jwks: RwLock::new(jwks),
            validation,
        })
    }

    /// Reads the JWKS file again, so rotated keys are picked up without a restart. A file
    /// that cannot be read or parsed leaves the current keys in place. Returns the key count.
    pub fn reload_jwks(&self) -> Result<usize, String> {
        let Some(path) = &self.jwks_file else {
            return Ok(0);
        };
        let loaded = load_jwks(path)?;
        loaded.log_skipped(path, false);
        let keys = loaded.keys;
        let count = keys.len();
        *self.jwks.write().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(count)
    }

    /// Whether keys come from a JWKS file (and so can be reloaded).
    pub fn has_jwks_file(&self) -> bool {
        self.jwks_file.is_some()
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        // The allow-list: a JWKS key by kid with that key's algorithm, or HS256 without a kid.
        let jwks = self.jwks.read().unwrap_or_else(PoisonError::into_inner);
        let (alg, key) = match (&header.kid, header.alg) {
            (Some(kid), alg) => match jwks.get(kid) {
                Some((key_alg, key)) if *key_alg == alg => (alg, key),
                _ => return Err(AuthError::Invalid(format!("no {alg:?} key with this kid"))),
            },
            (None, Algorithm::HS256) => match &self.hs256 {
                Some(key) => (Algorithm::HS256, key),
                None => return Err(AuthError::Invalid("HS256 is not enabled".into())),
            },
            (None, alg) => {
                return Err(AuthError::Invalid(format!(
                    "algorithm {alg:?} without a kid is not allowed"
                )));
            }
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        let data = jsonwebtoken::decode::<UserClaims>(token, key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let user = data
            .claims
            .preferred_username
            .filter(|u| !u.is_empty())
            .or(data.claims.sub.filter(|u| !u.is_empty()))
            .ok_or(AuthError::NoUser)?;
        if !is_acceptable_user(&user) {
            return Err(AuthError::BadUser);
        }
        // The validation accepts a token while `now <= exp + leeway` (whole seconds), so it is
        // refused from the second after that.
        let leeway = i64::try_from(validation.leeway).unwrap_or(i64::MAX);
        Ok(Caller {
            user,
            expires_at: data
                .claims
                .exp
                .map(|exp| exp.saturating_add(leeway).saturating_add(1)),
        })
    }
}

/// The caller named by the `authorization` values of a call (gRPC metadata or HTTP headers):
/// exactly one `Bearer` token (scheme in any case), at most `MAX_TOKEN_BYTES`, that `verifier`
/// accepts. Both edges authenticate through this one function.
pub fn authenticate<'a>(
    verifier: &dyn TokenVerifier,
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Caller, AuthError> {
    let mut values = values.into_iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        // Two credentials: which one a proxy or a log saw is unclear, so neither counts.
        return Err(AuthError::Repeated);
    }
    let value = std::str::from_utf8(value).map_err(|_| AuthError::NotBearer)?;
    // The scheme is case-insensitive (RFC 7235 section 2.1).
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    let token = token.trim();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLong);
    }
    verifier.verify(token)
}

/// What a client is told when authentication fails: only that the token was not accepted.
pub const UNAUTHENTICATED_MESSAGE: &str = "missing or invalid bearer token";

#[derive(Debug, Serialize)]
struct MintClaims<'a> {
    sub: &'a str,
    preferred_username: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// Mints a development HS256 token for `user`, valid for `ttl`.
pub fn mint_hs256(
    settings: &JwtSettings,
    user: &str,
    ttl: std::time::Duration,
) -> Result<String, String> {
    let secret = settings
        .hs256_secret
        .as_ref()
        .map(|s| s.expose_secret())
        .ok_or("PARTICIPANTS_JWT_HS256_SECRET is not set: development tokens are HS256")?;
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "PARTICIPANTS_JWT_HS256_SECRET must be at least {MIN_SECRET_LEN} bytes"
        ));
    }
    let now = chrono::Utc::now().timestamp();
    let claims = MintClaims {
        sub: user,
        preferred_username: user,
        iat: now,
        nbf: now,
        exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
        iss: settings.issuer.as_deref(),
        aud: settings.audience.as_deref(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| format!("cannot sign the token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretSlice;

    const SECRET: &[u8] = b"unit-test-secret-unit-test-secret-0123456789";

    fn token_expiring_at(exp: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"preferred_username": "crc", "iat": now - 120, "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .expect("sign")
    }

    /// A token the verifier accepts now must not count as expired now: a long call (an
    /// import) that ends at `expires_at` would otherwise be cut the moment it starts.
    #[test]
    fn an_accepted_token_expires_after_the_last_second_it_is_accepted() {
        let verifier = JwtVerifier::new(&JwtSettings {
            hs256_secret: Some(SecretSlice::from(SECRET.to_vec())),
            jwks_file: None,
            issuer: None,
            audience: None,
        })
        .expect("verifier");
        let now = chrono::Utc::now().timestamp();
        // The last second the 30 s leeway accepts (a second's margin for the clock to turn).
        let caller = verifier
            .verify(&token_expiring_at(now - 29))
            .expect("accepted within the leeway");
        assert_eq!(caller.expires_at, Some(now - 29 + 30 + 1));
        assert!(
            caller
                .expires_at
                .is_some_and(|e| e > chrono::Utc::now().timestamp())
        );
        assert!(verifier.verify(&token_expiring_at(now - 32)).is_err());
    }
}
