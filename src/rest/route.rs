//! The paths of the original's route, under any prefix before `/pages/`, with URL-encoded OIDs.

use axum::http::Method;
use percent_encoding::percent_decode_str;

use crate::service::model::ScopeRef;

/// Where every path of the route starts, after the prefix.
const BASE: &str = "/pages/auth/api/clinicaldata/studies/";

/// A path of the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `…/studies/{s}/participants` and `…/studies/{s}/sites/{t}/participants`: POST upserts,
    /// GET lists.
    Participants(ScopeRef),
    /// `…/participants/{participantID}`.
    Participant(ScopeRef, String),
    /// The original's `…/participant?participantID=…`.
    ParticipantByQuery(ScopeRef),
}

impl Route {
    /// The route named by `path`, or `None` (also for a segment that is not UTF-8 once decoded,
    /// or that is empty).
    pub fn parse(path: &str) -> Option<Route> {
        let start = path.find(BASE)? + BASE.len();
        let rest = path.get(start..)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let raw: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(raw.len());
        for s in raw {
            let decoded = percent_decode_str(s).decode_utf8().ok()?;
            if decoded.is_empty() {
                return None;
            }
            segments.push(decoded.into_owned());
        }
        let (scope, tail) = match segments.as_slice() {
            [study, sites, site, tail @ ..] if sites == "sites" => {
                (ScopeRef::site(study, site), tail)
            }
            [study, tail @ ..] => (ScopeRef::study(study), tail),
            [] => return None,
        };
        match tail {
            [p] if p == "participants" => Some(Route::Participants(scope)),
            [p, key] if p == "participants" => Some(Route::Participant(scope, key.clone())),
            [p] if p == "participant" => Some(Route::ParticipantByQuery(scope)),
            _ => None,
        }
    }

    /// Whether the path answers `method`.
    pub fn allows(&self, method: &Method) -> bool {
        match self {
            Route::Participants(_) => method == Method::POST || method == Method::GET,
            Route::Participant(..) | Route::ParticipantByQuery(_) => method == Method::GET,
        }
    }

    /// The use case a call of this path answers, as the metrics name it.
    pub fn method_name(&self, method: &Method) -> &'static str {
        match (self, method == Method::POST) {
            (Route::Participants(_), true) => "rest:UpsertParticipant",
            (Route::Participants(_), false) => "rest:ListParticipants",
            _ => "rest:GetParticipant",
        }
    }

    /// The `Allow` header of a 405.
    pub fn allowed(&self) -> &'static str {
        match self {
            Route::Participants(_) => "GET, POST",
            Route::Participant(..) | Route::ParticipantByQuery(_) => "GET",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_post_paths_under_any_prefix_with_encoded_oids() {
        assert_eq!(
            Route::parse(
                "/OpenClinica/pages/auth/api/clinicaldata/studies/S_JUNO%28PROD%29/sites/S_OHI0(TEST)/participants"
            ),
            Some(Route::Participants(ScopeRef::site(
                "S_JUNO(PROD)",
                "S_OHI0(TEST)"
            )))
        );
        assert_eq!(
            Route::parse("/pages/auth/api/clinicaldata/studies/S_JUNO(PROD)/participants/"),
            Some(Route::Participants(ScopeRef::study("S_JUNO(PROD)")))
        );
    }

    #[test]
    fn the_get_forms() {
        assert_eq!(
            Route::parse("/x/pages/auth/api/clinicaldata/studies/S/sites/T/participants/OHIO%205"),
            Some(Route::Participant(
                ScopeRef::site("S", "T"),
                "OHIO 5".into()
            ))
        );
        assert_eq!(
            Route::parse("/pages/auth/api/clinicaldata/studies/S/participant"),
            Some(Route::ParticipantByQuery(ScopeRef::study("S")))
        );
    }

    #[test]
    fn other_paths_are_not_routes() {
        for path in [
            "/",
            "/pages/auth/api/clinicaldata/studies/",
            "/pages/auth/api/clinicaldata/studies/S",
            "/pages/auth/api/clinicaldata/studies/S/sites/participants",
            "/pages/auth/api/clinicaldata/studies/S//participants",
            "/pages/auth/api/clinicaldata/studies/S/participants/a/b",
            "/pages/auth/api/clinicaldata/studies/%FF/participants",
            "/api/clinicaldata/studies/S/participants",
        ] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
    }
}
