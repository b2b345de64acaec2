//! ListParticipants (SPEC section 12): keyset pages that never repeat or skip, tokens bound to
//! their query, page size bounds, the status filter, GetParticipant's roles and masking, on
//! both edges.

use std::collections::HashSet;

use participants::pb::{
    ListParticipantsRequest, ListParticipantsResponse, ParticipantStatus, SiteScope, StudyScope,
    UpsertParticipantRequest, list_participants_request::Scope,
};
use serde_json::Value;
use tonic::{Code, Status};

use crate::helpers::{Backend, JUNO, OHIO, TestApp, contact, expect_failure, site};

const TEXAS: &str = "S_TEXAS(TEST)";

fn at_site(s: &str) -> Option<Scope> {
    Some(Scope::Site(SiteScope {
        study_oid: JUNO.into(),
        site_oid: s.into(),
    }))
}

fn whole_study() -> Option<Scope> {
    Some(Scope::Study(StudyScope {
        study_oid: JUNO.into(),
    }))
}

async fn list(
    app: &TestApp,
    user: &str,
    req: ListParticipantsRequest,
) -> Result<ListParticipantsResponse, Status> {
    app.client
        .clone()
        .list_participants(app.authed(user, req))
        .await
        .map(tonic::Response::into_inner)
}

/// Every subject key of a walk through all pages of `scope`, in page order.
async fn walk(app: &TestApp, user: &str, scope: Option<Scope>, size: i32) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            app,
            user,
            ListParticipantsRequest {
                scope: scope.clone(),
                page_size: size,
                page_token: token,
                status: None,
            },
        )
        .await
        .expect("a page");
        assert!(page.participants.len() <= size.max(1) as usize);
        keys.extend(page.participants.into_iter().map(|p| p.subject_key));
        if page.next_page_token.is_empty() {
            return keys;
        }
        token = page.next_page_token;
    }
}

/// Creates `n` participants `PREFIX-0…` at `site_oid`, 64 calls at a time; returns their keys
/// in creation order of the batches (ids grow within each batch in an unknown order).
async fn populate(
    app: &TestApp,
    user: &str,
    site_oid: &str,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in keys.chunks(64) {
        let calls = chunk.iter().map(|key| {
            let req = UpsertParticipantRequest {
                scope: site(JUNO, site_oid),
                subject_key: key.clone(),
                contact: contact(|c| c.city = Some("Dayton".into())),
                ..Default::default()
            };
            app.upsert(user, req)
        });
        for r in futures_util::future::join_all(calls).await {
            r.expect("created");
        }
    }
    keys
}

async fn pages_walk_every_participant_once_in_id_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ohio = populate(&app, "crc.ohio", OHIO, "O", 2_300).await;
    let texas = populate(&app, "crc.texas", TEXAS, "T", 200).await;
    let ohio_in_id_order = app_keys_in_id_order(&app, OHIO).await;
    assert_eq!(ohio_in_id_order.len(), ohio.len());
    for size in [1, 50, 1000] {
        let seen = walk(&app, "crc.ohio", at_site(OHIO), size).await;
        assert_eq!(seen, ohio_in_id_order, "page size {size}");
    }
    let all = walk(&app, "dm.juno", whole_study(), 1000).await;
    assert_eq!(all.len(), ohio.len() + texas.len());
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        all.len(),
        "no repeats"
    );
    let texas_seen = walk(&app, "crc.texas", at_site(TEXAS), 50).await;
    assert_eq!(texas_seen.len(), texas.len());
}

/// Subject keys of one site in id order, read from the database.
async fn app_keys_in_id_order(app: &TestApp, site_oid: &str) -> Vec<String> {
    use participants::store::entity::{participant, site};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let site = site::Entity::find()
        .filter(site::Column::Oid.eq(site_oid))
        .one(app.store.connection())
        .await
        .unwrap()
        .expect("the site");
    participant::Entity::find()
        .filter(participant::Column::SiteId.eq(site.id))
        .order_by_asc(participant::Column::Id)
        .all(app.store.connection())
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.subject_key)
        .collect()
}

async fn a_walk_during_inserts_repeats_and_skips_nothing(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let before = populate(&app, "crc.ohio", OHIO, "B", 300).await;
    let writer = {
        let app = app.clone();
        tokio::spawn(async move { populate(&app, "crc.ohio", OHIO, "NEW", 300).await })
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            &app,
            "crc.ohio",
            ListParticipantsRequest {
                scope: at_site(OHIO),
                page_size: 7,
                page_token: token,
                status: None,
            },
        )
        .await
        .unwrap();
        seen.extend(page.participants.into_iter().map(|p| p.subject_key));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        tokio::task::yield_now().await;
    }
    let added = writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a participant was listed twice");
    for key in &before {
        assert!(
            unique.contains(key),
            "{key}, there before the walk, was skipped"
        );
    }
    // Whatever the walk saw of the new ones, it saw in id order after the old ones.
    let in_id_order = app_keys_in_id_order(&app, OHIO).await;
    let positions: Vec<usize> = seen
        .iter()
        .map(|k| in_id_order.iter().position(|x| x == k).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "not in id order");
    assert_eq!(in_id_order.len(), before.len() + added.len());
}

async fn tokens_are_bound_to_their_query_and_tamper_proof(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    populate(&app, "crc.ohio", OHIO, "K", 5).await;
    populate(&app, "crc.texas", TEXAS, "X", 5).await;
    let first = list(
        &app,
        "dm.juno",
        ListParticipantsRequest {
            scope: at_site(OHIO),
            page_size: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let token = first.next_page_token.clone();
    assert!(!token.is_empty());
    let with = |scope, user: &'static str, token: String, status: Option<i32>| {
        let app = &app;
        async move {
            list(
                app,
                user,
                ListParticipantsRequest {
                    scope,
                    page_size: 2,
                    page_token: token,
                    status,
                },
            )
            .await
        }
    };
    // The same query goes on; a page size change is allowed.
    assert!(
        with(at_site(OHIO), "dm.juno", token.clone(), None)
            .await
            .is_ok()
    );
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let refusals = [
        with(at_site(TEXAS), "dm.juno", token.clone(), None).await,
        with(whole_study(), "dm.juno", token.clone(), None).await,
        with(at_site(OHIO), "ds.juno", token.clone(), None).await,
        with(
            at_site(OHIO),
            "dm.juno",
            token.clone(),
            Some(ParticipantStatus::Available as i32),
        )
        .await,
        with(at_site(OHIO), "dm.juno", tampered, None).await,
        with(at_site(OHIO), "dm.juno", "AAAAAAAA".into(), None).await,
        with(at_site(OHIO), "dm.juno", "not base64 at all!".into(), None).await,
        with(
            at_site(OHIO),
            "dm.juno",
            "x".repeat(100_000).chars().take(60_000).collect(),
            None,
        )
        .await,
    ];
    for r in refusals {
        let f = expect_failure(r, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        assert!(!f.message.contains(&token), "the message echoes no token");
    }
}

async fn page_sizes_status_filter_roles_and_masking(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    populate(&app, "crc.ohio", OHIO, "P", 60).await;
    app.execute("UPDATE participants SET status = 'removed' WHERE subject_key IN ('P-1', 'P-2')")
        .await;
    let size = |n: i32| ListParticipantsRequest {
        scope: at_site(OHIO),
        page_size: n,
        ..Default::default()
    };
    assert_eq!(
        list(&app, "crc.ohio", size(0))
            .await
            .unwrap()
            .participants
            .len(),
        50
    );
    assert_eq!(
        list(&app, "crc.ohio", size(5000))
            .await
            .unwrap()
            .participants
            .len(),
        60
    );
    expect_failure(
        list(&app, "crc.ohio", size(-1)).await,
        Code::InvalidArgument,
        "INVALID_PAGE_SIZE",
    );
    let removed = list(
        &app,
        "crc.ohio",
        ListParticipantsRequest {
            status: Some(ParticipantStatus::Removed as i32),
            ..size(100)
        },
    )
    .await
    .unwrap();
    // Created concurrently: their ids (the page's order) follow no key order.
    let mut keys: Vec<_> = removed
        .participants
        .iter()
        .map(|p| p.subject_key.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["P-1", "P-2"]);
    let unspecified = list(
        &app,
        "crc.ohio",
        ListParticipantsRequest {
            status: Some(ParticipantStatus::Unspecified as i32),
            ..size(100)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        unspecified.participants.len(),
        60,
        "UNSPECIFIED filters nothing"
    );

    // Contact data only for roles that may write it.
    let crc = list(&app, "crc.ohio", size(3)).await.unwrap();
    assert!(crc.participants.iter().all(|p| p.contact.is_some()));
    for reader in ["monitor.juno", "monitor.ohio", "viewer.ohio"] {
        let page = list(&app, reader, size(100)).await.unwrap();
        assert_eq!(page.participants.len(), 60, "{reader}");
        assert!(
            page.participants.iter().all(|p| p.contact.is_none()),
            "{reader}"
        );
    }
    // Reach: a site role cannot list the study; an unknown user has no role.
    assert!(
        list(
            &app,
            "crc.ohio",
            ListParticipantsRequest {
                scope: whole_study(),
                ..Default::default()
            }
        )
        .await
        .is_err()
    );
    expect_failure(
        list(&app, "nobody", size(10)).await,
        Code::PermissionDenied,
        "NO_ROLE_SET_UP",
    );
    expect_failure(
        list(&app, "crc.texas", size(10)).await,
        Code::PermissionDenied,
        "NO_ROLE_SET_UP",
    );
    expect_failure(
        list(&app, "crc.ohio", ListParticipantsRequest::default()).await,
        Code::NotFound,
        "STUDY_NOT_EXIST",
    );
    // A revoked role lists nothing more, even with a token it got before.
    let page = list(&app, "crc.ohio", size(10)).await.unwrap();
    app.execute("DELETE FROM role_assignments WHERE user_name = 'crc.ohio'")
        .await;
    let r = list(
        &app,
        "crc.ohio",
        ListParticipantsRequest {
            page_token: page.next_page_token,
            ..size(10)
        },
    )
    .await;
    assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);
}

async fn the_rest_route_lists_in_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    populate(&app, "crc.ohio", OHIO, "R", 7).await;
    let base = format!(
        "{}/OpenClinica/pages/auth/api/clinicaldata/studies/S_JUNO%28PROD%29/sites/S_OHI0%28TEST%29/participants",
        app.http
    );
    let get = |user: &str, query: String| {
        let request = reqwest::Client::new()
            .get(format!("{base}?{query}"))
            .bearer_auth(app.token(user));
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let mut keys = Vec::new();
    let mut token = String::new();
    loop {
        let (status, body) = get(
            "crc.ohio",
            format!("pageSize=3&pageToken={}", urlencode(&token)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        for p in body["participants"].as_array().unwrap() {
            assert_eq!(p["contact"]["city"], "Dayton");
            keys.push(p["subjectKey"].as_str().unwrap().to_owned());
        }
        token = body["nextPageToken"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(keys, app_keys_in_id_order(&app, OHIO).await);
    let (_, body) = get("monitor.juno", "status=available".into()).await;
    assert_eq!(body["participants"].as_array().unwrap().len(), 7);
    assert!(body["participants"][0].get("contact").is_none());
    let (status, body) = get("crc.ohio", "pageToken=forged".into()).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("INVALID_PAGE_TOKEN"))
    );
    let (status, body) = get("crc.ohio", "pageSize=-4".into()).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("INVALID_PAGE_SIZE"))
    );
    let (status, body) = get("crc.ohio", "status=gone".into()).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("MALFORMED_REQUEST"))
    );
    // The seed's single-participant route still upserts at the same path.
    let created = reqwest::Client::new()
        .post(&base)
        .bearer_auth(app.token("crc.ohio"))
        .json(&serde_json::json!({"subjectKey": "R-NEW"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

crate::on_both_backends!(
    pages_walk_every_participant_once_in_id_order,
    a_walk_during_inserts_repeats_and_skips_nothing,
    tokens_are_bound_to_their_query_and_tamper_proof,
    page_sizes_status_filter_roles_and_masking,
    the_rest_route_lists_in_pages,
);
