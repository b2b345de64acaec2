package com.openclinica.participants.sdk;

import com.openclinica.participants.v1.ImportResult;
import com.openclinica.participants.v1.UpsertParticipantResponse;
import io.grpc.Status;

/**
 * The answer for one row of {@link ParticipantsClient#importParticipants}: exactly one of
 * {@link #response()} and {@link #error()} is present.
 *
 * @param index the row's 0-based position in the input (answers may arrive out of input order)
 * @param response what UpsertParticipant would have answered, when the row was written (or
 *     validated, for {@code validate_only}); {@code null} when refused
 * @param error why the row was refused: the same {@link ParticipantsException} a unary call throws
 *     (typed reason, errorCode, field violations); {@code null} when written
 */
public record ImportRowResult(long index, UpsertParticipantResponse response, ParticipantsException error) {
  /** True when the row was written (or, with {@code validate_only}, found valid). */
  public boolean ok() {
    return error == null;
  }

  /** Decodes a generated {@code ImportResult}: its {@code google.rpc.Status} as a {@link ParticipantsException}. */
  public static ImportRowResult from(ImportResult result) {
    return switch (result.getOutcomeCase()) {
      case RESPONSE -> new ImportRowResult(result.getIndex(), result.getResponse(), null);
      case ERROR -> new ImportRowResult(result.getIndex(), null, ParticipantsException.fromStatus(result.getError()));
      // An outcome of a newer server that this SDK does not know.
      default -> new ImportRowResult(result.getIndex(), null, ParticipantsException.from(
          Status.UNKNOWN.withDescription("the row's outcome is not known to this SDK").asRuntimeException()));
    };
  }
}
