package com.openclinica.participants.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.gson.Gson;
import com.google.gson.reflect.TypeToken;
import com.openclinica.participants.v1.ErrorReason;
import com.openclinica.participants.v1.ParticipantContact;
import com.openclinica.participants.v1.SiteScope;
import com.openclinica.participants.v1.UpsertParticipantRequest;
import io.grpc.Status;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The asynchronous client: failures complete the future with a decoded {@link ParticipantsException}.
 * The live test (PARTICIPANTS_ADDR, PARTICIPANTS_TOKENS_FILE) sends only an invalid request, so it
 * changes nothing the conformance cases rely on.
 */
class AsyncParticipantsClientTest {
  private static UpsertParticipantRequest invalidEmail() {
    return UpsertParticipantRequest.newBuilder()
        .setSite(SiteScope.newBuilder().setStudyOid("S_CONF").setSiteOid("S_CONF_A"))
        .setSubjectKey("ASYNC-JAVA-1")
        .setContact(ParticipantContact.newBuilder().setEmailAddress("not-an-email"))
        .build();
  }

  @Test
  void anUnreachableServerCompletesExceptionallyWithTheDecodedStatus() {
    try (AsyncParticipantsClient client = AsyncParticipantsClient.forTarget("127.0.0.1:1", "t")) {
      ExecutionException failed = assertThrows(ExecutionException.class,
          () -> client.upsertParticipant(invalidEmail()).get(30, TimeUnit.SECONDS));
      ParticipantsException e = assertInstanceOf(ParticipantsException.class, failed.getCause());
      assertEquals(Status.Code.UNAVAILABLE, e.code());
      assertEquals(ErrorReason.ERROR_REASON_UNSPECIFIED, e.reason());
    }
  }

  @Test
  void aValidationErrorFromALiveServerDecodes() throws Exception {
    String addr = System.getenv("PARTICIPANTS_ADDR");
    Assumptions.assumeTrue(addr != null && !addr.isEmpty(), "PARTICIPANTS_ADDR not set: no live server to test against");
    Map<String, String> tokens = new Gson().fromJson(
        Files.readString(Path.of(System.getenv("PARTICIPANTS_TOKENS_FILE")), StandardCharsets.UTF_8),
        new TypeToken<Map<String, String>>() {}.getType());
    try (AsyncParticipantsClient client = AsyncParticipantsClient.forTarget(addr, tokens.get("crc.a"))) {
      ExecutionException failed = assertThrows(ExecutionException.class,
          () -> client.upsertParticipant(invalidEmail()).get(30, TimeUnit.SECONDS));
      ParticipantsException e = assertInstanceOf(ParticipantsException.class, failed.getCause());
      assertEquals(Status.Code.INVALID_ARGUMENT, e.code());
      assertEquals(ErrorReason.ERROR_REASON_INVALID_EMAIL_ADDRESS, e.reason());
      assertEquals("errorCode.invalidEmailAddress", e.errorCode());
      assertEquals(List.of("contact.email_address"), e.fieldViolations().stream().map(v -> v.field()).toList());
      assertEquals(ErrorReason.ERROR_REASON_INVALID_EMAIL_ADDRESS, e.fieldViolations().get(0).reason());
      assertFalse(e.getMessage().contains("not-an-email"));
    }
  }
}
