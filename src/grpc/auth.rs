//! Bearer-token authentication. Verification sits behind `TokenVerifier`, so RS256/ES256 keys
//! from a JWKS can be added as another key source without touching the handlers.

use std::{collections::HashSet, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
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
    pub hs256_secret: Option<Vec<u8>>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// Where verification keys come from. A JWKS source (RS256/ES256) is the next variant.
enum KeySource {
    Hs256(DecodingKey),
}

/// Verifies JWTs with an explicit algorithm allow-list.
pub struct JwtVerifier {
    keys: KeySource,
    validation: Validation,
}

#[derive(Debug, Deserialize)]
struct UserClaims {
    sub: Option<String>,
    preferred_username: Option<String>,
}

impl JwtVerifier {
    pub fn new(settings: &JwtSettings) -> Result<Self, String> {
        let secret = settings
            .hs256_secret
            .as_ref()
            .ok_or("PARTICIPANTS_JWT_HS256_SECRET is not set: a token key is required")?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "PARTICIPANTS_JWT_HS256_SECRET must be at least {MIN_SECRET_LEN} bytes"
            ));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
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
            keys: KeySource::Hs256(DecodingKey::from_secret(secret)),
            validation,
        })
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} not allowed",
                header.alg
            )));
        }
        let KeySource::Hs256(key) = &self.keys;
        let data = jsonwebtoken::decode::<UserClaims>(token, key, &self.validation)
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
    // Checks the secret the same way the server does.
    JwtVerifier::new(settings)?;
    let secret = settings.hs256_secret.as_deref().unwrap_or_default();
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
