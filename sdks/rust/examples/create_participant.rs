//! Creates a Participant, then shows how a validation error decodes.
//!
//! ```sh
//! PARTICIPANTS_ADDR=127.0.0.1:50051 PARTICIPANTS_TOKEN=$(participants token --user crc.ohio) \
//!   cargo run -p participants-client --example create_participant [SUBJECT_KEY] [STUDY_OID] [SITE_OID]
//! ```

use participants_client::{ParticipantsError, v1};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Defaults: the demo catalog (`participants serve --demo`).
    let mut args = vec![
        "SS-0001".to_owned(),
        "S_JUNO(PROD)".to_owned(),
        "S_OHI0(TEST)".to_owned(),
    ];
    for (slot, arg) in args.iter_mut().zip(std::env::args().skip(1)) {
        *slot = arg;
    }
    let [subject_key, study_oid, site_oid] =
        <[String; 3]>::try_from(args).map_err(|_| "three arguments")?;
    let addr = std::env::var("PARTICIPANTS_ADDR")?;
    let token = std::env::var("PARTICIPANTS_TOKEN")?;
    let mut client = participants_client::connect(&addr, token).await?;
    let scope = v1::upsert_participant_request::Scope::Site(v1::SiteScope {
        study_oid,
        site_oid,
    });

    let res = client
        .upsert_participant(v1::UpsertParticipantRequest {
            scope: Some(scope.clone()),
            subject_key: subject_key.clone(),
            contact: Some(v1::ParticipantContact {
                first_name: Some("Ada".into()),
                last_name: Some("Lovelace".into()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map_err(ParticipantsError::from)?
        .into_inner();
    let participant = res.participant.unwrap_or_default();
    let verb = if res.created { "created" } else { "updated" };
    println!(
        "{verb} {} {}",
        participant.subject_key, participant.subject_oid
    );

    let failed = client
        .upsert_participant(v1::UpsertParticipantRequest {
            scope: Some(scope),
            subject_key,
            contact: Some(v1::ParticipantContact {
                email_address: Some("not-an-email".into()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    if let Err(status) = failed {
        let e = ParticipantsError::from(status);
        println!(
            "{:?} {} {}",
            e.code,
            e.reason.as_str_name(),
            e.error_code().unwrap_or("")
        );
        for v in &e.field_violations {
            println!(
                "  {} {} - {}",
                v.field,
                v.reason.as_str_name(),
                v.description
            );
        }
    }
    Ok(())
}
