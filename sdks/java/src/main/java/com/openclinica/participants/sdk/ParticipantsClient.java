package com.openclinica.participants.sdk;

import com.openclinica.participants.v1.GetParticipantRequest;
import com.openclinica.participants.v1.Participant;
import com.openclinica.participants.v1.ParticipantServiceGrpc;
import com.openclinica.participants.v1.UpsertParticipantRequest;
import com.openclinica.participants.v1.UpsertParticipantResponse;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * A blocking ParticipantService client that authenticates every call with a bearer token and
 * throws {@link ParticipantsException} (with the typed reason, errorCode and field violations)
 * instead of a bare {@code StatusRuntimeException}.
 */
public final class ParticipantsClient implements AutoCloseable {
  private final ManagedChannel owned;
  private final ParticipantServiceGrpc.ParticipantServiceBlockingStub stub;
  private final Duration timeout;

  private ParticipantsClient(ManagedChannel owned, Channel channel, Supplier<String> token, Duration timeout) {
    this.owned = owned;
    this.stub = ParticipantServiceGrpc.newBlockingStub(
        ClientInterceptors.intercept(channel, new BearerTokenInterceptor(token)));
    this.timeout = timeout;
  }

  /** A plaintext connection to {@code host:port} (development). Use {@link #forChannel} for TLS. */
  public static ParticipantsClient forTarget(String target, String token) {
    ManagedChannel channel = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
    return new ParticipantsClient(channel, channel, () -> token, Duration.ofSeconds(30));
  }

  /** A client on a channel the caller owns (and closes), with a token supplier asked per call. */
  public static ParticipantsClient forChannel(Channel channel, Supplier<String> token, Duration timeout) {
    return new ParticipantsClient(null, channel, token, timeout);
  }

  /** The generated blocking stub with the bearer token attached (no deadline, raw exceptions). */
  public ParticipantServiceGrpc.ParticipantServiceBlockingStub stub() {
    return stub;
  }

  /** Creates or updates a Participant. */
  public UpsertParticipantResponse upsertParticipant(UpsertParticipantRequest request) {
    try {
      return stub.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS).upsertParticipant(request);
    } catch (StatusRuntimeException e) {
      throw ParticipantsException.from(e);
    }
  }

  /** Reads one Participant. */
  public Participant getParticipant(GetParticipantRequest request) {
    try {
      return stub.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS).getParticipant(request);
    } catch (StatusRuntimeException e) {
      throw ParticipantsException.from(e);
    }
  }

  @Override
  public void close() {
    if (owned != null) {
      owned.shutdown();
      try {
        if (!owned.awaitTermination(5, TimeUnit.SECONDS)) {
          owned.shutdownNow();
        }
      } catch (InterruptedException e) {
        owned.shutdownNow();
        Thread.currentThread().interrupt();
      }
    }
  }
}
