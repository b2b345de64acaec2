//! Bearer-token authentication. Verification sits behind `TokenVerifier`; the handlers only see
//! the resulting `Caller`.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, PoisonError, RwLock},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm},
};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status, service::Interceptor};

use super::status::simple_status;
use crate::domain::Reason;
use crate::service::Caller;

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
}

/// Turns a bearer token into the caller.
pub trait TokenVerifier: Send + Sync + 'static {
    fn verify(&self, token: &str) -> Result<Caller, AuthError>;
}

/// JWT settings (SPEC section 3).
#[derive(Debug, Clone, Default)]
pub struct JwtSettings {
    /// Development key: HS256 tokens without a `kid`.
    pub hs256_secret: Option<Vec<u8>>,
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
    jwks: RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    validation: Validation,
}

#[derive(Debug, Deserialize)]
struct UserClaims {
    sub: Option<String>,
    preferred_username: Option<String>,
}

/// Loads RS256 and ES256 public keys from a JWKS file, by `kid`.
fn load_jwks(path: &std::path::Path) -> Result<HashMap<String, (Algorithm, DecodingKey)>, String> {
    let what = format!("JWKS file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| format!("{what}: {e}"))?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| format!("{what}: {e}"))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| format!("{what}: every key needs a kid"))?;
        let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(KeyAlgorithm::RS256), _) => Algorithm::RS256,
            (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
            (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
            (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            _ => {
                return Err(format!("{what}: key {kid:?} is not an RS256 or ES256 key"));
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("{what}: key {kid:?}: {e}"))?;
        keys.insert(kid, (alg, key));
    }
    Ok(keys)
}

impl JwtVerifier {
    pub fn new(settings: &JwtSettings) -> Result<Self, String> {
        let hs256 = match &settings.hs256_secret {
            Some(secret) if secret.len() < MIN_SECRET_LEN => {
                return Err(format!(
                    "PARTICIPANTS_JWT_HS256_SECRET must be at least {MIN_SECRET_LEN} bytes"
                ));
            }
            Some(secret) => Some(DecodingKey::from_secret(secret)),
            None => None,
        };
        let jwks = match &settings.jwks_file {
            Some(path) => load_jwks(path)?,
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
        let keys = load_jwks(path)?;
        if keys.is_empty() && self.hs256.is_none() {
            return Err(format!(
                "JWKS file {} has no keys; keeping the current ones",
                path.display()
            ));
        }
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
        Ok(Caller { user })
    }
}

/// The tonic interceptor that authenticates every ParticipantService call.
#[derive(Clone)]
pub struct AuthInterceptor {
    verifier: Arc<dyn TokenVerifier>,
}

impl AuthInterceptor {
    pub fn new(verifier: Arc<dyn TokenVerifier>) -> Self {
        Self { verifier }
    }

    fn authenticate(&self, req: &Request<()>) -> Result<Caller, AuthError> {
        let value = req
            .metadata()
            .get("authorization")
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::NotBearer)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(AuthError::NotBearer)?
            .trim();
        self.verifier.verify(token)
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        match self.authenticate(&req) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Ok(req)
            }
            Err(e) => {
                // The client learns only that the token was not accepted.
                tracing::debug!(reason = %e, "unauthenticated call");
                Err(simple_status(
                    Reason::Unauthenticated,
                    "missing or invalid bearer token",
                ))
            }
        }
    }
}

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
        .as_deref()
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
