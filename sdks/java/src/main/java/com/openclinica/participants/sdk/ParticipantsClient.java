package com.openclinica.participants.sdk;

import com.openclinica.participants.v1.AuditEvent;
import com.openclinica.participants.v1.AuditServiceGrpc;
import com.openclinica.participants.v1.GetParticipantRequest;
import com.openclinica.participants.v1.ListAuditEventsRequest;
import com.openclinica.participants.v1.ListAuditEventsResponse;
import com.openclinica.participants.v1.ListParticipantsRequest;
import com.openclinica.participants.v1.ListParticipantsResponse;
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
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.function.Function;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * A blocking ParticipantService and AuditService client that authenticates every call with a
 * bearer token and throws {@link ParticipantsException} (with the typed reason, errorCode and field
 * violations) instead of a bare {@code StatusRuntimeException}. {@link #listAllParticipants} and
 * {@link #listAllAuditEvents} stream every item of a list, fetching one page at a time;
 * {@link #importParticipants} streams rows to ImportParticipants and one result per row back.
 */
public final class ParticipantsClient implements AutoCloseable {
  private final ManagedChannel owned;
  private final ParticipantServiceGrpc.ParticipantServiceBlockingStub stub;
  private final ParticipantServiceGrpc.ParticipantServiceStub asyncStub;
  private final AuditServiceGrpc.AuditServiceBlockingStub auditStub;
  private final Duration timeout;

  private ParticipantsClient(ManagedChannel owned, Channel channel, Supplier<String> token, Duration timeout) {
    this.owned = owned;
    Channel authenticated = ClientInterceptors.intercept(channel, new BearerTokenInterceptor(token));
    this.stub = ParticipantServiceGrpc.newBlockingStub(authenticated);
    this.asyncStub = ParticipantServiceGrpc.newStub(authenticated);
    this.auditStub = AuditServiceGrpc.newBlockingStub(authenticated);
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

  /** One page of Participants. */
  public ListParticipantsResponse listParticipants(ListParticipantsRequest request) {
    try {
      return stub.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS).listParticipants(request);
    } catch (StatusRuntimeException e) {
      throw ParticipantsException.from(e);
    }
  }

  /**
   * Every Participant of the query, page after page ({@code request}'s page size per call, from its
   * page token on), following {@code next_page_token}; a page is fetched when the stream reaches it,
   * and a failed page throws {@link ParticipantsException} from the stream.
   */
  public Stream<Participant> listAllParticipants(ListParticipantsRequest request) {
    return pages(request.getPageToken(),
        token -> {
          ListParticipantsResponse page = listParticipants(request.toBuilder().setPageToken(token).build());
          return new Page<>(page.getParticipantsList(), page.getNextPageToken());
        });
  }

  /**
   * Streams {@code rows} to ImportParticipants and returns one {@link ImportRowResult} per row, as
   * the server commits them (not necessarily in input order: see {@link ImportRowResult#index()}):
   *
   * <pre>{@code
   * try (Stream<ImportRowResult> results = client.importParticipants(rows)) {
   *   results.filter(r -> !r.ok()).forEach(r -> System.out.println(r.index() + " " + r.error().reasonName()));
   * }
   * }</pre>
   *
   * <p>The call starts at once. A row is taken from {@code rows} (on a gRPC thread) only when the
   * transport is ready for it, and results are requested from the server only as the stream is
   * consumed, so a large input (a lazy iterator over a file) is never held in memory. A refused row
   * is a result with its {@link ParticipantsException}, and the stream goes on; a failure of the
   * whole call (no token, the server going away) throws {@link ParticipantsException} from the
   * stream after the results already returned, and an exception thrown by {@code rows} itself
   * cancels the call and is rethrown as is. Give every row a {@code request_id} so that re-sending
   * the input after such a failure writes nothing twice. The call has no deadline (the server cuts a
   * client that stays silent instead). Closing the stream before its end cancels the call; rows the
   * server had already committed stay written.
   */
  public Stream<ImportRowResult> importParticipants(Iterator<UpsertParticipantRequest> rows) {
    ImportCall call = new ImportCall(rows);
    asyncStub.importParticipants(call);
    return StreamSupport.stream(
            Spliterators.spliteratorUnknownSize(call, Spliterator.ORDERED | Spliterator.NONNULL), false)
        .onClose(call::cancel);
  }

  /** {@link #importParticipants(Iterator)} over an {@link Iterable}, e.g. a {@code List}. */
  public Stream<ImportRowResult> importParticipants(Iterable<UpsertParticipantRequest> rows) {
    return importParticipants(rows.iterator());
  }

  /** {@link #importParticipants(Iterator)} over a (lazy) {@link Stream}; closing the results closes it. */
  public Stream<ImportRowResult> importParticipants(Stream<UpsertParticipantRequest> rows) {
    return importParticipants(rows.iterator()).onClose(rows::close);
  }

  /** One page of audit events (oldest first). */
  public ListAuditEventsResponse listAuditEvents(ListAuditEventsRequest request) {
    try {
      return auditStub.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS).listAuditEvents(request);
    } catch (StatusRuntimeException e) {
      throw ParticipantsException.from(e);
    }
  }

  /** Every audit event of the query, oldest first, page after page (as {@link #listAllParticipants}). */
  public Stream<AuditEvent> listAllAuditEvents(ListAuditEventsRequest request) {
    return pages(request.getPageToken(),
        token -> {
          ListAuditEventsResponse page = listAuditEvents(request.toBuilder().setPageToken(token).build());
          return new Page<>(page.getEventsList(), page.getNextPageToken());
        });
  }

  /** The generated AuditService blocking stub with the bearer token attached (no deadline, raw exceptions). */
  public AuditServiceGrpc.AuditServiceBlockingStub auditStub() {
    return auditStub;
  }

  private record Page<T>(List<T> items, String nextPageToken) {}

  private static <T> Stream<T> pages(String firstToken, Function<String, Page<T>> fetch) {
    Iterator<T> items = new Iterator<>() {
      private Iterator<T> current = List.<T>of().iterator();
      private String token = firstToken;
      private boolean last = false;

      @Override
      public boolean hasNext() {
        while (!current.hasNext() && !last) {
          Page<T> page = fetch.apply(token);
          current = page.items().iterator();
          token = page.nextPageToken();
          last = token.isEmpty();
        }
        return current.hasNext();
      }

      @Override
      public T next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        return current.next();
      }
    };
    return StreamSupport.stream(Spliterators.spliteratorUnknownSize(items, Spliterator.ORDERED), false);
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
