package com.openclinica.participants.examples;

import com.openclinica.participants.sdk.ParticipantsClient;
import com.openclinica.participants.sdk.ParticipantsException;
import com.openclinica.participants.v1.ParticipantContact;
import com.openclinica.participants.v1.SiteScope;
import com.openclinica.participants.v1.UpsertParticipantRequest;
import com.openclinica.participants.v1.UpsertParticipantResponse;

/**
 * Creates a Participant, then shows how a validation error decodes.
 *
 * <pre>
 * PARTICIPANTS_ADDR=127.0.0.1:50051 PARTICIPANTS_TOKEN=$(participants token --user crc.ohio) \
 *   java -cp ... com.openclinica.participants.examples.CreateParticipant [SUBJECT_KEY] [STUDY_OID] [SITE_OID]
 * </pre>
 */
public final class CreateParticipant {
  public static void main(String[] args) {
    String[] a = {"SS-0001", "S_JUNO(PROD)", "S_OHI0(TEST)"}; // defaults: the demo catalog
    System.arraycopy(args, 0, a, 0, Math.min(args.length, a.length));
    SiteScope site = SiteScope.newBuilder().setStudyOid(a[1]).setSiteOid(a[2]).build();
    try (ParticipantsClient client =
        ParticipantsClient.forTarget(System.getenv("PARTICIPANTS_ADDR"), System.getenv("PARTICIPANTS_TOKEN"))) {
      UpsertParticipantResponse res = client.upsertParticipant(UpsertParticipantRequest.newBuilder()
          .setSite(site).setSubjectKey(a[0])
          .setContact(ParticipantContact.newBuilder().setFirstName("Ada").setLastName("Lovelace"))
          .build());
      System.out.println((res.getCreated() ? "created " : "updated ")
          + res.getParticipant().getSubjectKey() + " " + res.getParticipant().getSubjectOid());
      try {
        client.upsertParticipant(UpsertParticipantRequest.newBuilder().setSite(site).setSubjectKey(a[0])
            .setContact(ParticipantContact.newBuilder().setEmailAddress("not-an-email")).build());
      } catch (ParticipantsException e) {
        System.out.println(e.code() + " " + e.reason() + " " + e.errorCode());
        e.fieldViolations().forEach(v ->
            System.out.println("  " + v.field() + " " + v.reason() + " - " + v.description()));
      }
    }
  }
}
