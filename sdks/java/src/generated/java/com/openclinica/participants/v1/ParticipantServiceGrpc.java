package com.openclinica.participants.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Adds Participants to a study site or to the study level, updates their contact data, and
 * registers them for Participate. Re-creates OpenClinica 4's "Add/Update Participant" endpoint.
 * Every call needs `authorization: Bearer &lt;JWT&gt;` metadata. Errors are `google.rpc.Status`
 * values whose details hold a `google.rpc.ErrorInfo` (reason = an `ErrorReason` name without
 * its `ERROR_REASON_` prefix, domain `participants.openclinica.v1`, metadata `errorCode` with the
 * OpenClinica code) and, for validation errors, a `google.rpc.BadRequest` with one field
 * violation per broken rule.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class ParticipantServiceGrpc {

  private ParticipantServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "openclinica.participants.v1.ParticipantService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<com.openclinica.participants.v1.UpsertParticipantRequest,
      com.openclinica.participants.v1.UpsertParticipantResponse> getUpsertParticipantMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "UpsertParticipant",
      requestType = com.openclinica.participants.v1.UpsertParticipantRequest.class,
      responseType = com.openclinica.participants.v1.UpsertParticipantResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.openclinica.participants.v1.UpsertParticipantRequest,
      com.openclinica.participants.v1.UpsertParticipantResponse> getUpsertParticipantMethod() {
    io.grpc.MethodDescriptor<com.openclinica.participants.v1.UpsertParticipantRequest, com.openclinica.participants.v1.UpsertParticipantResponse> getUpsertParticipantMethod;
    if ((getUpsertParticipantMethod = ParticipantServiceGrpc.getUpsertParticipantMethod) == null) {
      synchronized (ParticipantServiceGrpc.class) {
        if ((getUpsertParticipantMethod = ParticipantServiceGrpc.getUpsertParticipantMethod) == null) {
          ParticipantServiceGrpc.getUpsertParticipantMethod = getUpsertParticipantMethod =
              io.grpc.MethodDescriptor.<com.openclinica.participants.v1.UpsertParticipantRequest, com.openclinica.participants.v1.UpsertParticipantResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "UpsertParticipant"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.openclinica.participants.v1.UpsertParticipantRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.openclinica.participants.v1.UpsertParticipantResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ParticipantServiceMethodDescriptorSupplier("UpsertParticipant"))
              .build();
        }
      }
    }
    return getUpsertParticipantMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.openclinica.participants.v1.GetParticipantRequest,
      com.openclinica.participants.v1.Participant> getGetParticipantMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetParticipant",
      requestType = com.openclinica.participants.v1.GetParticipantRequest.class,
      responseType = com.openclinica.participants.v1.Participant.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.openclinica.participants.v1.GetParticipantRequest,
      com.openclinica.participants.v1.Participant> getGetParticipantMethod() {
    io.grpc.MethodDescriptor<com.openclinica.participants.v1.GetParticipantRequest, com.openclinica.participants.v1.Participant> getGetParticipantMethod;
    if ((getGetParticipantMethod = ParticipantServiceGrpc.getGetParticipantMethod) == null) {
      synchronized (ParticipantServiceGrpc.class) {
        if ((getGetParticipantMethod = ParticipantServiceGrpc.getGetParticipantMethod) == null) {
          ParticipantServiceGrpc.getGetParticipantMethod = getGetParticipantMethod =
              io.grpc.MethodDescriptor.<com.openclinica.participants.v1.GetParticipantRequest, com.openclinica.participants.v1.Participant>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetParticipant"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.openclinica.participants.v1.GetParticipantRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.openclinica.participants.v1.Participant.getDefaultInstance()))
              .setSchemaDescriptor(new ParticipantServiceMethodDescriptorSupplier("GetParticipant"))
              .build();
        }
      }
    }
    return getGetParticipantMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.openclinica.participants.v1.ListParticipantsRequest,
      com.openclinica.participants.v1.ListParticipantsResponse> getListParticipantsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListParticipants",
      requestType = com.openclinica.participants.v1.ListParticipantsRequest.class,
      responseType = com.openclinica.participants.v1.ListParticipantsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<com.openclinica.participants.v1.ListParticipantsRequest,
      com.openclinica.participants.v1.ListParticipantsResponse> getListParticipantsMethod() {
    io.grpc.MethodDescriptor<com.openclinica.participants.v1.ListParticipantsRequest, com.openclinica.participants.v1.ListParticipantsResponse> getListParticipantsMethod;
    if ((getListParticipantsMethod = ParticipantServiceGrpc.getListParticipantsMethod) == null) {
      synchronized (ParticipantServiceGrpc.class) {
        if ((getListParticipantsMethod = ParticipantServiceGrpc.getListParticipantsMethod) == null) {
          ParticipantServiceGrpc.getListParticipantsMethod = getListParticipantsMethod =
              io.grpc.MethodDescriptor.<com.openclinica.participants.v1.ListParticipantsRequest, com.openclinica.participants.v1.ListParticipantsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListParticipants"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.openclinica.participants.v1.ListParticipantsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.openclinica.participants.v1.ListParticipantsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ParticipantServiceMethodDescriptorSupplier("ListParticipants"))
              .build();
        }
      }
    }
    return getListParticipantsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<com.openclinica.participants.v1.UpsertParticipantRequest,
      com.openclinica.participants.v1.ImportResult> getImportParticipantsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ImportParticipants",
      requestType = com.openclinica.participants.v1.UpsertParticipantRequest.class,
      responseType = com.openclinica.participants.v1.ImportResult.class,
      methodType = io.grpc.MethodDescriptor.MethodType.BIDI_STREAMING)
  public static io.grpc.MethodDescriptor<com.openclinica.participants.v1.UpsertParticipantRequest,
      com.openclinica.participants.v1.ImportResult> getImportParticipantsMethod() {
    io.grpc.MethodDescriptor<com.openclinica.participants.v1.UpsertParticipantRequest, com.openclinica.participants.v1.ImportResult> getImportParticipantsMethod;
    if ((getImportParticipantsMethod = ParticipantServiceGrpc.getImportParticipantsMethod) == null) {
      synchronized (ParticipantServiceGrpc.class) {
        if ((getImportParticipantsMethod = ParticipantServiceGrpc.getImportParticipantsMethod) == null) {
          ParticipantServiceGrpc.getImportParticipantsMethod = getImportParticipantsMethod =
              io.grpc.MethodDescriptor.<com.openclinica.participants.v1.UpsertParticipantRequest, com.openclinica.participants.v1.ImportResult>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.BIDI_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ImportParticipants"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.openclinica.participants.v1.UpsertParticipantRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  com.openclinica.participants.v1.ImportResult.getDefaultInstance()))
              .setSchemaDescriptor(new ParticipantServiceMethodDescriptorSupplier("ImportParticipants"))
              .build();
        }
      }
    }
    return getImportParticipantsMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static ParticipantServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceStub>() {
        @java.lang.Override
        public ParticipantServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ParticipantServiceStub(channel, callOptions);
        }
      };
    return ParticipantServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static ParticipantServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceBlockingV2Stub>() {
        @java.lang.Override
        public ParticipantServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ParticipantServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return ParticipantServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static ParticipantServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceBlockingStub>() {
        @java.lang.Override
        public ParticipantServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ParticipantServiceBlockingStub(channel, callOptions);
        }
      };
    return ParticipantServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static ParticipantServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ParticipantServiceFutureStub>() {
        @java.lang.Override
        public ParticipantServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ParticipantServiceFutureStub(channel, callOptions);
        }
      };
    return ParticipantServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Adds Participants to a study site or to the study level, updates their contact data, and
   * registers them for Participate. Re-creates OpenClinica 4's "Add/Update Participant" endpoint.
   * Every call needs `authorization: Bearer &lt;JWT&gt;` metadata. Errors are `google.rpc.Status`
   * values whose details hold a `google.rpc.ErrorInfo` (reason = an `ErrorReason` name without
   * its `ERROR_REASON_` prefix, domain `participants.openclinica.v1`, metadata `errorCode` with the
   * OpenClinica code) and, for validation errors, a `google.rpc.BadRequest` with one field
   * violation per broken rule.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Creates the Participant if its ID is new in the study, otherwise updates it.
     * Checks run in order: token; study and site; role; request shape; field validation (every
     * violation reported); lookup; enrollment cap (creations only); write. Safe to retry with the
     * same `request_id`.
     * </pre>
     */
    default void upsertParticipant(com.openclinica.participants.v1.UpsertParticipantRequest request,
        io.grpc.stub.StreamObserver<com.openclinica.participants.v1.UpsertParticipantResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getUpsertParticipantMethod(), responseObserver);
    }

    /**
     * <pre>
     * Reads one Participant. Allowed to every role; a Participant outside the caller's reach
     * answers `PARTICIPANT_NOT_FOUND`. MONITOR and VIEWER get no contact data.
     * </pre>
     */
    default void getParticipant(com.openclinica.participants.v1.GetParticipantRequest request,
        io.grpc.stub.StreamObserver<com.openclinica.participants.v1.Participant> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetParticipantMethod(), responseObserver);
    }

    /**
     * <pre>
     * Lists the Participants of a study or a site, a page at a time, oldest first (AIP-132).
     * Allowed to every role within its reach, with GetParticipant's contact masking. The order is
     * stable while Participants are added: a page never repeats or skips one.
     * </pre>
     */
    default void listParticipants(com.openclinica.participants.v1.ListParticipantsRequest request,
        io.grpc.stub.StreamObserver<com.openclinica.participants.v1.ListParticipantsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListParticipantsMethod(), responseObserver);
    }

    /**
     * <pre>
     * Adds or updates many Participants: one UpsertParticipantRequest per row in, one
     * ImportResult per row out, as rows commit (not necessarily in input order; `index` says which
     * row). Every row has exactly the rules of UpsertParticipant; a refused row is answered with its
     * error and never stops the stream. The call is not cut by the server's per-call timeout, only
     * by a client that stays silent past the idle timeout. Give every row a `request_id` so that
     * re-sending a stream after a failure writes nothing twice.
     * </pre>
     */
    default io.grpc.stub.StreamObserver<com.openclinica.participants.v1.UpsertParticipantRequest> importParticipants(
        io.grpc.stub.StreamObserver<com.openclinica.participants.v1.ImportResult> responseObserver) {
      return io.grpc.stub.ServerCalls.asyncUnimplementedStreamingCall(getImportParticipantsMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service ParticipantService.
   * <pre>
   * Adds Participants to a study site or to the study level, updates their contact data, and
   * registers them for Participate. Re-creates OpenClinica 4's "Add/Update Participant" endpoint.
   * Every call needs `authorization: Bearer &lt;JWT&gt;` metadata. Errors are `google.rpc.Status`
   * values whose details hold a `google.rpc.ErrorInfo` (reason = an `ErrorReason` name without
   * its `ERROR_REASON_` prefix, domain `participants.openclinica.v1`, metadata `errorCode` with the
   * OpenClinica code) and, for validation errors, a `google.rpc.BadRequest` with one field
   * violation per broken rule.
   * </pre>
   */
  public static abstract class ParticipantServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return ParticipantServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service ParticipantService.
   * <pre>
   * Adds Participants to a study site or to the study level, updates their contact data, and
   * registers them for Participate. Re-creates OpenClinica 4's "Add/Update Participant" endpoint.
   * Every call needs `authorization: Bearer &lt;JWT&gt;` metadata. Errors are `google.rpc.Status`
   * values whose details hold a `google.rpc.ErrorInfo` (reason = an `ErrorReason` name without
   * its `ERROR_REASON_` prefix, domain `participants.openclinica.v1`, metadata `errorCode` with the
   * OpenClinica code) and, for validation errors, a `google.rpc.BadRequest` with one field
   * violation per broken rule.
   * </pre>
   */
  public static final class ParticipantServiceStub
      extends io.grpc.stub.AbstractAsyncStub<ParticipantServiceStub> {
    private ParticipantServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ParticipantServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ParticipantServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Creates the Participant if its ID is new in the study, otherwise updates it.
     * Checks run in order: token; study and site; role; request shape; field validation (every
     * violation reported); lookup; enrollment cap (creations only); write. Safe to retry with the
     * same `request_id`.
     * </pre>
     */
    public void upsertParticipant(com.openclinica.participants.v1.UpsertParticipantRequest request,
        io.grpc.stub.StreamObserver<com.openclinica.participants.v1.UpsertParticipantResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getUpsertParticipantMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Reads one Participant. Allowed to every role; a Participant outside the caller's reach
     * answers `PARTICIPANT_NOT_FOUND`. MONITOR and VIEWER get no contact data.
     * </pre>
     */
    public void getParticipant(com.openclinica.participants.v1.GetParticipantRequest request,
        io.grpc.stub.StreamObserver<com.openclinica.participants.v1.Participant> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetParticipantMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Lists the Participants of a study or a site, a page at a time, oldest first (AIP-132).
     * Allowed to every role within its reach, with GetParticipant's contact masking. The order is
     * stable while Participants are added: a page never repeats or skips one.
     * </pre>
     */
    public void listParticipants(com.openclinica.participants.v1.ListParticipantsRequest request,
        io.grpc.stub.StreamObserver<com.openclinica.participants.v1.ListParticipantsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListParticipantsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Adds or updates many Participants: one UpsertParticipantRequest per row in, one
     * ImportResult per row out, as rows commit (not necessarily in input order; `index` says which
     * row). Every row has exactly the rules of UpsertParticipant; a refused row is answered with its
     * error and never stops the stream. The call is not cut by the server's per-call timeout, only
     * by a client that stays silent past the idle timeout. Give every row a `request_id` so that
     * re-sending a stream after a failure writes nothing twice.
     * </pre>
     */
    public io.grpc.stub.StreamObserver<com.openclinica.participants.v1.UpsertParticipantRequest> importParticipants(
        io.grpc.stub.StreamObserver<com.openclinica.participants.v1.ImportResult> responseObserver) {
      return io.grpc.stub.ClientCalls.asyncBidiStreamingCall(
          getChannel().newCall(getImportParticipantsMethod(), getCallOptions()), responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service ParticipantService.
   * <pre>
   * Adds Participants to a study site or to the study level, updates their contact data, and
   * registers them for Participate. Re-creates OpenClinica 4's "Add/Update Participant" endpoint.
   * Every call needs `authorization: Bearer &lt;JWT&gt;` metadata. Errors are `google.rpc.Status`
   * values whose details hold a `google.rpc.ErrorInfo` (reason = an `ErrorReason` name without
   * its `ERROR_REASON_` prefix, domain `participants.openclinica.v1`, metadata `errorCode` with the
   * OpenClinica code) and, for validation errors, a `google.rpc.BadRequest` with one field
   * violation per broken rule.
   * </pre>
   */
  public static final class ParticipantServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<ParticipantServiceBlockingV2Stub> {
    private ParticipantServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ParticipantServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ParticipantServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Creates the Participant if its ID is new in the study, otherwise updates it.
     * Checks run in order: token; study and site; role; request shape; field validation (every
     * violation reported); lookup; enrollment cap (creations only); write. Safe to retry with the
     * same `request_id`.
     * </pre>
     */
    public com.openclinica.participants.v1.UpsertParticipantResponse upsertParticipant(com.openclinica.participants.v1.UpsertParticipantRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getUpsertParticipantMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reads one Participant. Allowed to every role; a Participant outside the caller's reach
     * answers `PARTICIPANT_NOT_FOUND`. MONITOR and VIEWER get no contact data.
     * </pre>
     */
    public com.openclinica.participants.v1.Participant getParticipant(com.openclinica.participants.v1.GetParticipantRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetParticipantMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists the Participants of a study or a site, a page at a time, oldest first (AIP-132).
     * Allowed to every role within its reach, with GetParticipant's contact masking. The order is
     * stable while Participants are added: a page never repeats or skips one.
     * </pre>
     */
    public com.openclinica.participants.v1.ListParticipantsResponse listParticipants(com.openclinica.participants.v1.ListParticipantsRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListParticipantsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Adds or updates many Participants: one UpsertParticipantRequest per row in, one
     * ImportResult per row out, as rows commit (not necessarily in input order; `index` says which
     * row). Every row has exactly the rules of UpsertParticipant; a refused row is answered with its
     * error and never stops the stream. The call is not cut by the server's per-call timeout, only
     * by a client that stays silent past the idle timeout. Give every row a `request_id` so that
     * re-sending a stream after a failure writes nothing twice.
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<com.openclinica.participants.v1.UpsertParticipantRequest, com.openclinica.participants.v1.ImportResult>
        importParticipants() {
      return io.grpc.stub.ClientCalls.blockingBidiStreamingCall(
          getChannel(), getImportParticipantsMethod(), getCallOptions());
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service ParticipantService.
   * <pre>
   * Adds Participants to a study site or to the study level, updates their contact data, and
   * registers them for Participate. Re-creates OpenClinica 4's "Add/Update Participant" endpoint.
   * Every call needs `authorization: Bearer &lt;JWT&gt;` metadata. Errors are `google.rpc.Status`
   * values whose details hold a `google.rpc.ErrorInfo` (reason = an `ErrorReason` name without
   * its `ERROR_REASON_` prefix, domain `participants.openclinica.v1`, metadata `errorCode` with the
   * OpenClinica code) and, for validation errors, a `google.rpc.BadRequest` with one field
   * violation per broken rule.
   * </pre>
   */
  public static final class ParticipantServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<ParticipantServiceBlockingStub> {
    private ParticipantServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ParticipantServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ParticipantServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Creates the Participant if its ID is new in the study, otherwise updates it.
     * Checks run in order: token; study and site; role; request shape; field validation (every
     * violation reported); lookup; enrollment cap (creations only); write. Safe to retry with the
     * same `request_id`.
     * </pre>
     */
    public com.openclinica.participants.v1.UpsertParticipantResponse upsertParticipant(com.openclinica.participants.v1.UpsertParticipantRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getUpsertParticipantMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Reads one Participant. Allowed to every role; a Participant outside the caller's reach
     * answers `PARTICIPANT_NOT_FOUND`. MONITOR and VIEWER get no contact data.
     * </pre>
     */
    public com.openclinica.participants.v1.Participant getParticipant(com.openclinica.participants.v1.GetParticipantRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetParticipantMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists the Participants of a study or a site, a page at a time, oldest first (AIP-132).
     * Allowed to every role within its reach, with GetParticipant's contact masking. The order is
     * stable while Participants are added: a page never repeats or skips one.
     * </pre>
     */
    public com.openclinica.participants.v1.ListParticipantsResponse listParticipants(com.openclinica.participants.v1.ListParticipantsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListParticipantsMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service ParticipantService.
   * <pre>
   * Adds Participants to a study site or to the study level, updates their contact data, and
   * registers them for Participate. Re-creates OpenClinica 4's "Add/Update Participant" endpoint.
   * Every call needs `authorization: Bearer &lt;JWT&gt;` metadata. Errors are `google.rpc.Status`
   * values whose details hold a `google.rpc.ErrorInfo` (reason = an `ErrorReason` name without
   * its `ERROR_REASON_` prefix, domain `participants.openclinica.v1`, metadata `errorCode` with the
   * OpenClinica code) and, for validation errors, a `google.rpc.BadRequest` with one field
   * violation per broken rule.
   * </pre>
   */
  public static final class ParticipantServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<ParticipantServiceFutureStub> {
    private ParticipantServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ParticipantServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ParticipantServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Creates the Participant if its ID is new in the study, otherwise updates it.
     * Checks run in order: token; study and site; role; request shape; field validation (every
     * violation reported); lookup; enrollment cap (creations only); write. Safe to retry with the
     * same `request_id`.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.openclinica.participants.v1.UpsertParticipantResponse> upsertParticipant(
        com.openclinica.participants.v1.UpsertParticipantRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getUpsertParticipantMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Reads one Participant. Allowed to every role; a Participant outside the caller's reach
     * answers `PARTICIPANT_NOT_FOUND`. MONITOR and VIEWER get no contact data.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.openclinica.participants.v1.Participant> getParticipant(
        com.openclinica.participants.v1.GetParticipantRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetParticipantMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Lists the Participants of a study or a site, a page at a time, oldest first (AIP-132).
     * Allowed to every role within its reach, with GetParticipant's contact masking. The order is
     * stable while Participants are added: a page never repeats or skips one.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<com.openclinica.participants.v1.ListParticipantsResponse> listParticipants(
        com.openclinica.participants.v1.ListParticipantsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListParticipantsMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_UPSERT_PARTICIPANT = 0;
  private static final int METHODID_GET_PARTICIPANT = 1;
  private static final int METHODID_LIST_PARTICIPANTS = 2;
  private static final int METHODID_IMPORT_PARTICIPANTS = 3;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final AsyncService serviceImpl;
    private final int methodId;

    MethodHandlers(AsyncService serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_UPSERT_PARTICIPANT:
          serviceImpl.upsertParticipant((com.openclinica.participants.v1.UpsertParticipantRequest) request,
              (io.grpc.stub.StreamObserver<com.openclinica.participants.v1.UpsertParticipantResponse>) responseObserver);
          break;
        case METHODID_GET_PARTICIPANT:
          serviceImpl.getParticipant((com.openclinica.participants.v1.GetParticipantRequest) request,
              (io.grpc.stub.StreamObserver<com.openclinica.participants.v1.Participant>) responseObserver);
          break;
        case METHODID_LIST_PARTICIPANTS:
          serviceImpl.listParticipants((com.openclinica.participants.v1.ListParticipantsRequest) request,
              (io.grpc.stub.StreamObserver<com.openclinica.participants.v1.ListParticipantsResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_IMPORT_PARTICIPANTS:
          return (io.grpc.stub.StreamObserver<Req>) serviceImpl.importParticipants(
              (io.grpc.stub.StreamObserver<com.openclinica.participants.v1.ImportResult>) responseObserver);
        default:
          throw new AssertionError();
      }
    }
  }

  public static final io.grpc.ServerServiceDefinition bindService(AsyncService service) {
    return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
        .addMethod(
          getUpsertParticipantMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              com.openclinica.participants.v1.UpsertParticipantRequest,
              com.openclinica.participants.v1.UpsertParticipantResponse>(
                service, METHODID_UPSERT_PARTICIPANT)))
        .addMethod(
          getGetParticipantMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              com.openclinica.participants.v1.GetParticipantRequest,
              com.openclinica.participants.v1.Participant>(
                service, METHODID_GET_PARTICIPANT)))
        .addMethod(
          getListParticipantsMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              com.openclinica.participants.v1.ListParticipantsRequest,
              com.openclinica.participants.v1.ListParticipantsResponse>(
                service, METHODID_LIST_PARTICIPANTS)))
        .addMethod(
          getImportParticipantsMethod(),
          io.grpc.stub.ServerCalls.asyncBidiStreamingCall(
            new MethodHandlers<
              com.openclinica.participants.v1.UpsertParticipantRequest,
              com.openclinica.participants.v1.ImportResult>(
                service, METHODID_IMPORT_PARTICIPANTS)))
        .build();
  }

  private static abstract class ParticipantServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    ParticipantServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return com.openclinica.participants.v1.ParticipantServiceProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("ParticipantService");
    }
  }

  private static final class ParticipantServiceFileDescriptorSupplier
      extends ParticipantServiceBaseDescriptorSupplier {
    ParticipantServiceFileDescriptorSupplier() {}
  }

  private static final class ParticipantServiceMethodDescriptorSupplier
      extends ParticipantServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    ParticipantServiceMethodDescriptorSupplier(java.lang.String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (ParticipantServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new ParticipantServiceFileDescriptorSupplier())
              .addMethod(getUpsertParticipantMethod())
              .addMethod(getGetParticipantMethod())
              .addMethod(getListParticipantsMethod())
              .addMethod(getImportParticipantsMethod())
              .build();
        }
      }
    }
    return result;
  }
}
