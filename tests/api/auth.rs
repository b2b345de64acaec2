//! Every token failure of SPEC section 3 answers UNAUTHENTICATED with an ErrorInfo.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tonic::Code;

use crate::helpers::{
    AppOptions, Backend, ES256_PRIVATE_PEM, RS256_PRIVATE_PEM, SECRET, TestApp, at_ohio,
    expect_failure, with_token,
};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

fn unsigned(claims: serde_json::Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        b64.encode(claims.to_string())
    )
}

async fn call_with(app: &TestApp, token: Option<&str>) -> Result<(), tonic::Status> {
    let req = match token {
        Some(t) => with_token(at_ohio("AUTH-1"), t),
        None => tonic::Request::new(at_ohio("AUTH-1")),
    };
    app.client.clone().upsert_participant(req).await.map(|_| ())
}

async fn every_bad_token_is_unauthenticated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = "crc.ohio";
    let good = json!({"sub": user, "exp": now() + 600});
    // The good token works, so the failures below are about the token alone.
    call_with(&app, Some(&sign(good.clone(), SECRET)))
        .await
        .expect("a good token works");

    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("garbage", Some("not-a-jwt".into())),
        (
            "wrong secret",
            Some(sign(
                good.clone(),
                "another-secret-another-secret-0123456789",
            )),
        ),
        (
            "expired",
            Some(sign(json!({"sub": user, "exp": now() - 3600}), SECRET)),
        ),
        ("no exp", Some(sign(json!({"sub": user}), SECRET))),
        (
            "string exp",
            Some(sign(
                json!({"sub": user, "exp": (now() + 600).to_string()}),
                SECRET,
            )),
        ),
        (
            "string nbf",
            Some(sign(
                json!({"sub": user, "exp": now() + 600, "nbf": "0"}),
                SECRET,
            )),
        ),
        ("alg none", Some(unsigned(good.clone()))),
        (
            "future nbf",
            Some(sign(
                json!({"sub": user, "exp": now() + 7200, "nbf": now() + 3600}),
                SECRET,
            )),
        ),
        ("no user", Some(sign(json!({"exp": now() + 600}), SECRET))),
    ];
    for (name, token) in cases {
        let f = expect_failure(
            call_with(&app, token.as_deref()).await,
            Code::Unauthenticated,
            "UNAUTHENTICATED",
        );
        // The answer never says which check failed.
        assert_eq!(f.message, "missing or invalid bearer token", "{name}");
    }

    // A non-bearer scheme is refused too.
    let mut req = tonic::Request::new(at_ohio("AUTH-1"));
    req.metadata_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    let r = app.client.clone().upsert_participant(req).await.map(|_| ());
    expect_failure(r, Code::Unauthenticated, "UNAUTHENTICATED");

    // GetParticipant is guarded the same way.
    let r = app
        .client
        .clone()
        .get_participant(tonic::Request::new(crate::helpers::get_site("S", "S", "X")))
        .await
        .map(|_| ());
    expect_failure(r, Code::Unauthenticated, "UNAUTHENTICATED");
}

async fn issuer_and_audience_are_enforced_when_configured(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.issuer = Some("https://idp.example.org".into());
    options.audience = Some("participants".into());
    let app = TestApp::spawn_with(options).await;
    let user = "crc.ohio";
    let ok = json!({"sub": user, "exp": now() + 600, "iss": "https://idp.example.org", "aud": "participants"});
    call_with(&app, Some(&sign(ok, SECRET)))
        .await
        .expect("right issuer and audience");

    for claims in [
        json!({"sub": user, "exp": now() + 600, "iss": "https://evil.example.org", "aud": "participants"}),
        json!({"sub": user, "exp": now() + 600, "iss": "https://idp.example.org", "aud": "other"}),
        json!({"sub": user, "exp": now() + 600, "aud": "participants"}),
        json!({"sub": user, "exp": now() + 600, "iss": "https://idp.example.org"}),
    ] {
        let r = call_with(&app, Some(&sign(claims.clone(), SECRET))).await;
        expect_failure(r, Code::Unauthenticated, "UNAUTHENTICATED");
    }
}

async fn preferred_username_names_the_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // `sub` is an opaque id with no role; preferred_username has the role.
    let token = sign(
        json!({"sub": "0f3a-opaque", "preferred_username": "crc.ohio", "exp": now() + 600}),
        SECRET,
    );
    call_with(&app, Some(&token))
        .await
        .expect("preferred_username wins over sub");
}

fn sign_with(alg: Algorithm, kid: Option<&str>, pem: &str, claims: serde_json::Value) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .expect("test key");
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

async fn jwks_keys_verify_rs256_and_es256_by_kid(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.hs256 = false;
    options.jwks = true;
    let app = TestApp::spawn_with(options).await;
    let claims = json!({"sub": "crc.ohio", "exp": now() + 600});
    let es = sign_with(
        Algorithm::ES256,
        Some("test-es256"),
        ES256_PRIVATE_PEM,
        claims.clone(),
    );
    call_with(&app, Some(&es)).await.expect("ES256 by kid");
    let rs = sign_with(
        Algorithm::RS256,
        Some("test-rs256"),
        RS256_PRIVATE_PEM,
        claims.clone(),
    );
    call_with(&app, Some(&rs)).await.expect("RS256 by kid");

    let refused = [
        // unknown kid
        sign_with(
            Algorithm::ES256,
            Some("other"),
            ES256_PRIVATE_PEM,
            claims.clone(),
        ),
        // no kid
        sign_with(Algorithm::ES256, None, ES256_PRIVATE_PEM, claims.clone()),
        // an RS256 token that names the ES256 key
        sign_with(
            Algorithm::RS256,
            Some("test-es256"),
            RS256_PRIVATE_PEM,
            claims.clone(),
        ),
        // HS256 is off when only a JWKS is configured
        sign(claims.clone(), SECRET),
        // key confusion: HS256 "signed" with the RSA public key's text as the secret
        {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("test-rs256".into());
            jsonwebtoken::encode(
                &header,
                &claims,
                &EncodingKey::from_secret(JWKS_PUBLIC_TEXT.as_bytes()),
            )
            .unwrap()
        },
        // expired, even with a good key
        sign_with(
            Algorithm::ES256,
            Some("test-es256"),
            ES256_PRIVATE_PEM,
            json!({"sub": "crc.ohio", "exp": now() - 3600}),
        ),
    ];
    for token in refused {
        let r = call_with(&app, Some(&token)).await;
        expect_failure(r, Code::Unauthenticated, "UNAUTHENTICATED");
    }
}

const JWKS_PUBLIC_TEXT: &str = include_str!("../fixtures/jwt/jwks.json");

/// User claims that could forge or hide log lines, or are unreasonably long.
async fn user_claims_with_control_or_format_characters_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let long = "u".repeat(256);
    let names = [
        "crc.ohio\nlevel=INFO msg=\"forged\"",
        "crc.ohio\r",
        "crc.ohio\u{0}",
        "crc.ohio\u{1b}[2J",
        "crc.ohio\u{200B}",
        "crc.ohio\u{202E}",
        "\u{FEFF}crc.ohio",
        "crc.ohio\u{2028}x",
        long.as_str(),
    ];
    for name in names {
        for claim in ["preferred_username", "sub"] {
            let token = sign(json!({claim: name, "exp": now() + 600}), SECRET);
            let r = call_with(&app, Some(&token)).await;
            let f = expect_failure(r, Code::Unauthenticated, "UNAUTHENTICATED");
            assert_eq!(
                f.message, "missing or invalid bearer token",
                "{claim} {name:?}"
            );
        }
    }
    // A 255-character name is still a name (it has no role here).
    let token = sign(json!({"sub": "u".repeat(255), "exp": now() + 600}), SECRET);
    let r = call_with(&app, Some(&token)).await;
    expect_failure(r, Code::PermissionDenied, "NO_ROLE_SET_UP");
    assert_eq!(app.participant_count().await, 0);
}

/// Two `authorization` headers: neither is used.
async fn two_authorization_headers_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = app.token("crc.ohio");
    for second in [format!("Bearer {good}"), "Bearer not-a-jwt".to_owned()] {
        let mut req = with_token(at_ohio("AUTH-2"), &good);
        req.metadata_mut()
            .append("authorization", second.parse().unwrap());
        let r = app.client.clone().upsert_participant(req).await.map(|_| ());
        expect_failure(r, Code::Unauthenticated, "UNAUTHENTICATED");
    }
    assert_eq!(app.participant_count().await, 0);
}

/// The auth scheme is case-insensitive (RFC 7235 section 2.1).
async fn the_bearer_scheme_is_case_insensitive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token("crc.ohio");
    for (n, scheme) in ["Bearer", "bearer", "BEARER", "bEaReR"].iter().enumerate() {
        let mut req = tonic::Request::new(at_ohio(&format!("CASE-{n}")));
        req.metadata_mut().insert(
            "authorization",
            format!("{scheme} {token}").parse().unwrap(),
        );
        app.client
            .clone()
            .upsert_participant(req)
            .await
            .unwrap_or_else(|s| panic!("scheme {scheme}: {s:?}"));
    }
    for value in [
        format!("Bearer{token}"),
        format!("Bearerx {token}"),
        token.clone(),
    ] {
        let mut req = tonic::Request::new(at_ohio("CASE-X"));
        req.metadata_mut()
            .insert("authorization", value.parse().unwrap());
        let r = app.client.clone().upsert_participant(req).await.map(|_| ());
        expect_failure(r, Code::Unauthenticated, "UNAUTHENTICATED");
    }
}

/// A token over 8 KiB is refused as UNAUTHENTICATED, also past the 16 KiB default HTTP/2
/// header limit (which used to surface as UNKNOWN or a GOAWAY).
async fn an_oversized_token_is_unauthenticated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for size in [9 * 1024, 20 * 1024, 40 * 1024] {
        let token = "a".repeat(size);
        let r = call_with(&app, Some(&token)).await;
        expect_failure(r, Code::Unauthenticated, "UNAUTHENTICATED");
    }
    // The connection is still good.
    call_with(&app, Some(&app.token("crc.ohio")))
        .await
        .expect("a good token after the big ones");
}

crate::on_both_backends!(
    user_claims_with_control_or_format_characters_are_refused,
    two_authorization_headers_are_refused,
    the_bearer_scheme_is_case_insensitive,
    an_oversized_token_is_unauthenticated,
    jwks_keys_verify_rs256_and_es256_by_kid,
    every_bad_token_is_unauthenticated,
    issuer_and_audience_are_enforced_when_configured,
    preferred_username_names_the_user,
);

#[test]
fn a_rotated_jwks_file_is_picked_up_on_reload() {
    use participants::auth::{JwtSettings, JwtVerifier, TokenVerifier};
    let all: serde_json::Value = serde_json::from_str(JWKS_PUBLIC_TEXT).unwrap();
    let only = |kid: &str| {
        let keys: Vec<_> = all["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["kid"] == kid)
            .cloned()
            .collect();
        json!({ "keys": keys }).to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, only("test-es256")).unwrap();
    let verifier = JwtVerifier::new(&JwtSettings {
        jwks_file: Some(file.clone()),
        ..Default::default()
    })
    .unwrap();
    let claims = json!({"sub": "crc.ohio", "exp": now() + 600});
    let es = sign_with(
        Algorithm::ES256,
        Some("test-es256"),
        ES256_PRIVATE_PEM,
        claims.clone(),
    );
    let rs = sign_with(
        Algorithm::RS256,
        Some("test-rs256"),
        RS256_PRIVATE_PEM,
        claims,
    );
    assert!(verifier.verify(&es).is_ok());
    assert!(
        verifier.verify(&rs).is_err(),
        "the RS256 key is not published yet"
    );

    // The provider rotates: the RSA key replaces the EC key.
    std::fs::write(&file, only("test-rs256")).unwrap();
    assert_eq!(verifier.reload_jwks(), Ok(1));
    assert!(verifier.verify(&rs).is_ok());
    assert!(verifier.verify(&es).is_err(), "the retired key is refused");

    // A broken file keeps the current keys.
    std::fs::write(&file, "{ not json").unwrap();
    assert!(verifier.reload_jwks().is_err());
    assert!(verifier.verify(&rs).is_ok());
}

const KEYCLOAK_JWKS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jwt/keycloak-jwks.json"
);

#[test]
fn a_keycloak_jwks_file_uses_its_signing_keys_and_skips_the_rest() {
    use participants::auth::{JwtSettings, JwtVerifier, TokenVerifier};
    let verifier = JwtVerifier::new(&JwtSettings {
        jwks_file: Some(KEYCLOAK_JWKS.into()),
        ..Default::default()
    })
    .expect("a JWKS with encryption, oct and kid-less keys beside the signing keys");
    let claims = json!({"sub": "crc.ohio", "exp": now() + 600});
    let es = sign_with(
        Algorithm::ES256,
        Some("test-es256"),
        ES256_PRIVATE_PEM,
        claims.clone(),
    );
    let rs = sign_with(
        Algorithm::RS256,
        Some("test-rs256"),
        RS256_PRIVATE_PEM,
        claims.clone(),
    );
    assert!(verifier.verify(&es).is_ok());
    assert!(verifier.verify(&rs).is_ok());
    // The skipped keys verify nothing: the encryption key (same modulus as the RS256 key),
    // the RS512 key, and the oct key.
    for kid in ["enc-oaep", "enc-oaep-256", "rs512"] {
        let t = sign_with(
            Algorithm::RS256,
            Some(kid),
            RS256_PRIVATE_PEM,
            claims.clone(),
        );
        assert!(verifier.verify(&t).is_err(), "{kid}");
    }
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hmac-1".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(b"secret-secret-secret-secret-secret"),
    )
    .unwrap();
    assert!(verifier.verify(&hs).is_err(), "the oct key is skipped");
    // Reloading the same file works too.
    assert_eq!(verifier.reload_jwks(), Ok(2));
}

#[test]
fn a_jwks_file_without_a_usable_signing_key_is_refused() {
    use participants::auth::{JwtSettings, JwtVerifier};
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(KEYCLOAK_JWKS).unwrap()).unwrap();
    let unusable: Vec<_> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kid"] != "test-es256" && k["kid"] != "test-rs256")
        .cloned()
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, json!({ "keys": unusable }).to_string()).unwrap();
    let settings = JwtSettings {
        jwks_file: Some(file.clone()),
        ..Default::default()
    };
    let e = JwtVerifier::new(&settings).err().expect("no usable key");
    assert!(e.contains("no usable signing key"), "{e}");
    // Key material never appears in the message.
    assert!(!e.contains("AQAB") && !e.contains("c2VjcmV0"), "{e}");

    // A reload of such a file keeps the current keys.
    std::fs::write(&file, JWKS_PUBLIC_TEXT).unwrap();
    let verifier = JwtVerifier::new(&settings).unwrap();
    std::fs::write(&file, json!({ "keys": unusable }).to_string()).unwrap();
    assert!(verifier.reload_jwks().is_err());
}
