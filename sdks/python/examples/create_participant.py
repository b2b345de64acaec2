"""Creates a Participant, then shows how a validation error decodes.

Run: PARTICIPANTS_ADDR=127.0.0.1:50051 PARTICIPANTS_TOKEN=$(participants token --user crc.ohio) \
     python create_participant.py [SUBJECT_KEY] [STUDY_OID] [SITE_OID]
"""

import os
import sys

from openclinica_participants import (
    ErrorReason,
    ParticipantContact,
    ParticipantsClient,
    ParticipantsError,
    SiteScope,
    UpsertParticipantRequest,
)

defaults = ["SS-0001", "S_JUNO(PROD)", "S_OHI0(TEST)"]  # the demo catalog
subject_key, study, site = [*sys.argv[1:4], *defaults[len(sys.argv[1:4]) :]]
with ParticipantsClient(os.environ["PARTICIPANTS_ADDR"], os.environ["PARTICIPANTS_TOKEN"]) as client:
    scope = SiteScope(study_oid=study, site_oid=site)
    response = client.upsert_participant(UpsertParticipantRequest(
        site=scope, subject_key=subject_key, contact=ParticipantContact(first_name="Ada", last_name="Lovelace")))
    print("created" if response.created else "updated", response.participant.subject_key, response.participant.subject_oid)
    try:
        client.upsert_participant(UpsertParticipantRequest(
            site=scope, subject_key=subject_key, contact=ParticipantContact(email_address="not-an-email")))
    except ParticipantsError as error:
        print(error.code.name, ErrorReason.Name(error.reason), error.error_code)
        for violation in error.field_violations:
            print(" ", violation.field, ErrorReason.Name(violation.reason), "-", violation.description)
