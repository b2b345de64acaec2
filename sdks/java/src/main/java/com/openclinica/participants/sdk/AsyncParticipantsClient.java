package com.openclinica.participants.sdk;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import com.openclinica.participants.v1.GetParticipantRequest;
import com.openclinica.participants.v1.Participant;
import com.openclinica.participants.v1.ParticipantServiceGrpc;
import com.openclinica.participants.v1.UpsertParticipantRequest;
import com.openclinica.participants.v1.UpsertParticipantResponse;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The asynchronous twin of {@link ParticipantsClient}: every call returns a {@link CompletableFuture}
 * (over the generated future stub) that completes with the response, or exceptionally with a
 * {@link ParticipantsException} holding the typed reason, errorCode and field violations. Same bearer
 * token, same default deadline.
 */
public final class AsyncParticipantsClient implements AutoCloseable {
  private final ManagedChannel owned;
  private final ParticipantServiceGrpc.ParticipantServiceFutureStub stub;
  private final Duration timeout;

  private AsyncParticipantsClient(ManagedChannel owned, Channel channel, Supplier<String> token, Duration timeout) {
    this.owned = owned;
    this.stub = ParticipantServiceGrpc.newFutureStub(
        ClientInterceptors.intercept(channel, new BearerTokenInterceptor(token)));
    this.timeout = timeout;
  }

  /** A plaintext connection to {@code host:port} (development). Use {@link #forChannel} for TLS. */
  public static AsyncParticipantsClient forTarget(String target, String token) {
    ManagedChannel channel = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
    return new AsyncParticipantsClient(channel, channel, () -> token, Duration.ofSeconds(30));
  }

  /** A client on a channel the caller owns (and closes), with a token supplier asked per call. */
  public static AsyncParticipantsClient forChannel(Channel channel, Supplier<String> token, Duration timeout) {
    return new AsyncParticipantsClient(null, channel, token, timeout);
  }

  /** The generated future stub with the bearer token attached (no deadline, raw exceptions). */
  public ParticipantServiceGrpc.ParticipantServiceFutureStub stub() {
    return stub;
  }

  /** Creates or updates a Participant. */
  public CompletableFuture<UpsertParticipantResponse> upsertParticipant(UpsertParticipantRequest request) {
    return complete(deadlined().upsertParticipant(request));
  }

  /** Reads one Participant. */
  public CompletableFuture<Participant> getParticipant(GetParticipantRequest request) {
    return complete(deadlined().getParticipant(request));
  }

  private ParticipantServiceGrpc.ParticipantServiceFutureStub deadlined() {
    return stub.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  private static <T> CompletableFuture<T> complete(ListenableFuture<T> call) {
    CompletableFuture<T> result = new CompletableFuture<>() {
      @Override
      public boolean cancel(boolean mayInterruptIfRunning) {
        call.cancel(mayInterruptIfRunning); // cancelling the future cancels the RPC
        return super.cancel(mayInterruptIfRunning);
      }
    };
    Futures.addCallback(call, new FutureCallback<T>() {
      @Override
      public void onSuccess(T value) {
        result.complete(value);
      }

      @Override
      public void onFailure(Throwable error) {
        result.completeExceptionally(ParticipantsException.from(error));
      }
    }, MoreExecutors.directExecutor());
    return result;
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
