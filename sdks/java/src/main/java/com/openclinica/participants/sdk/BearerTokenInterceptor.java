package com.openclinica.participants.sdk;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import java.util.Objects;
import java.util.function.Supplier;

/**
 * Sends {@code authorization: Bearer <token>} with every call. The supplier is asked once per call,
 * so it may hand out refreshed tokens; an empty token sends no authorization metadata.
 */
public final class BearerTokenInterceptor implements ClientInterceptor {
  static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final Supplier<String> token;

  public BearerTokenInterceptor(Supplier<String> token) {
    this.token = Objects.requireNonNull(token, "token");
  }

  public BearerTokenInterceptor(String token) {
    this(() -> token);
  }

  @Override
  public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
      MethodDescriptor<ReqT, RespT> method, CallOptions callOptions, Channel next) {
    return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, callOptions)) {
      @Override
      public void start(Listener<RespT> responseListener, Metadata headers) {
        String value = token.get();
        if (value != null && !value.isEmpty()) {
          headers.put(AUTHORIZATION, "Bearer " + value);
        }
        super.start(responseListener, headers);
      }
    };
  }
}
