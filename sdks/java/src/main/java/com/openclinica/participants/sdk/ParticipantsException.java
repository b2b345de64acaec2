package com.openclinica.participants.sdk;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import com.openclinica.participants.v1.ErrorReason;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A failed call to the participant service, decoded from its {@code google.rpc.Status} (the
 * {@code grpc-status-details-bin} trailer): the typed {@link ErrorReason}, the OpenClinica
 * {@code errorCode}, and the field violations of a validation error.
 */
public final class ParticipantsException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** The {@code google.rpc.ErrorInfo} domain of every error the service sends. */
  public static final String ERROR_DOMAIN = "participants.openclinica.v1";

  private static final String REASON_PREFIX = "ERROR_REASON_";

  /** One broken validation rule (a {@code google.rpc.BadRequest.FieldViolation}). */
  public record FieldViolation(String field, ErrorReason reason, String reasonName, String description) {}

  private final Status.Code code;
  private final String statusMessage;
  private final String reasonName;
  private final ErrorReason reason;
  private final String domain;
  private final Map<String, String> metadata;
  private final List<FieldViolation> fieldViolations;
  private final Duration retryDelay;

  private ParticipantsException(
      Throwable cause,
      Status.Code code,
      String statusMessage,
      String reasonName,
      String domain,
      Map<String, String> metadata,
      List<FieldViolation> fieldViolations,
      Duration retryDelay) {
    super(code + ": " + statusMessage + (reasonName.isEmpty() ? "" : " [" + reasonName + "]"), cause);
    this.code = code;
    this.statusMessage = statusMessage;
    this.reasonName = reasonName;
    this.reason = reasonFromName(reasonName);
    this.domain = domain;
    this.metadata = Map.copyOf(metadata);
    this.fieldViolations = List.copyOf(fieldViolations);
    this.retryDelay = retryDelay;
  }

  /** Decodes a {@code StatusRuntimeException} / {@code StatusException} (any other throwable: UNKNOWN). */
  public static ParticipantsException from(Throwable error) {
    if (error instanceof ParticipantsException decoded) {
      return decoded;
    }
    Status status = Status.fromThrowable(error);
    String message = status.getDescription() == null ? "" : status.getDescription();
    String reasonName = "";
    String domain = "";
    Map<String, String> metadata = Map.of();
    List<FieldViolation> violations = new ArrayList<>();
    Duration retryDelay = null;
    com.google.rpc.Status details = StatusProto.fromThrowable(error);
    if (details != null) {
      for (Any detail : details.getDetailsList()) {
        try {
          if (detail.is(ErrorInfo.class)) {
            ErrorInfo info = detail.unpack(ErrorInfo.class);
            reasonName = info.getReason();
            domain = info.getDomain();
            metadata = info.getMetadataMap();
          } else if (detail.is(BadRequest.class)) {
            for (BadRequest.FieldViolation v : detail.unpack(BadRequest.class).getFieldViolationsList()) {
              violations.add(new FieldViolation(
                  v.getField(), reasonFromName(v.getReason()), v.getReason(), v.getDescription()));
            }
          } else if (detail.is(RetryInfo.class)) {
            com.google.protobuf.Duration d = detail.unpack(RetryInfo.class).getRetryDelay();
            retryDelay = Duration.ofSeconds(d.getSeconds(), d.getNanos());
          }
        } catch (InvalidProtocolBufferException e) {
          // A malformed detail is ignored; the status code and message still apply.
        }
      }
    }
    return new ParticipantsException(
        error, status.getCode(), message, reasonName, domain, metadata, violations, retryDelay);
  }

  /**
   * Decodes a {@code google.rpc.Status} message, such as the {@code error} of an
   * {@code ImportResult}, into the same exception a failed unary call throws.
   */
  public static ParticipantsException fromStatus(com.google.rpc.Status status) {
    // A code gRPC does not know (a newer or broken server) reads as UNKNOWN, as on a unary call.
    com.google.rpc.Status known = Status.fromCodeValue(status.getCode()).getCode().value() == status.getCode()
        ? status
        : status.toBuilder().setCode(Status.Code.UNKNOWN.value()).build();
    return from(StatusProto.toStatusRuntimeException(known));
  }

  /**
   * Maps a reason such as {@code FIRST_NAME_TOO_LONG} to the generated enum; an unknown name (a
   * newer server) gives {@link ErrorReason#ERROR_REASON_UNSPECIFIED}.
   */
  public static ErrorReason reasonFromName(String name) {
    if (name == null || name.isEmpty()) {
      return ErrorReason.ERROR_REASON_UNSPECIFIED;
    }
    try {
      return ErrorReason.valueOf(REASON_PREFIX + name);
    } catch (IllegalArgumentException e) {
      return ErrorReason.ERROR_REASON_UNSPECIFIED;
    }
  }

  /** The gRPC status code. */
  public Status.Code code() {
    return code;
  }

  /** The status message (plain English). */
  public String statusMessage() {
    return statusMessage;
  }

  /** {@code ErrorInfo.reason} as the generated enum ({@code ERROR_REASON_UNSPECIFIED} when absent or unknown). */
  public ErrorReason reason() {
    return reason;
  }

  /** {@code ErrorInfo.reason} as sent, e.g. {@code FIRST_NAME_TOO_LONG}. */
  public String reasonName() {
    return reasonName;
  }

  /** {@code ErrorInfo.domain}. */
  public String domain() {
    return domain;
  }

  /** {@code ErrorInfo.metadata}: {@code errorCode} plus {@code studyOid} / {@code siteOid} where known. */
  public Map<String, String> metadata() {
    return metadata;
  }

  /** The OpenClinica error code, e.g. {@code errorCode.firstNameTooLong} (empty if absent). */
  public String errorCode() {
    return metadata.getOrDefault("errorCode", "");
  }

  /** Every broken validation rule (empty unless a validation error). */
  public List<FieldViolation> fieldViolations() {
    return fieldViolations;
  }

  /** {@code google.rpc.RetryInfo}'s delay (STORAGE_UNAVAILABLE), if any. */
  public Optional<Duration> retryDelay() {
    return Optional.ofNullable(retryDelay);
  }
}
