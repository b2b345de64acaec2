package com.openclinica.participants.sdk;

import com.openclinica.participants.v1.ImportResult;
import com.openclinica.participants.v1.UpsertParticipantRequest;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * One ImportParticipants call as an iterator of results, with flow control both ways: a row is
 * taken from the input only while the transport is ready for it (gRPC's onReady handler), and
 * results are requested from the server only as fast as the caller consumes them, so neither the
 * input nor the answers pile up in memory.
 */
final class ImportCall implements ClientResponseObserver<UpsertParticipantRequest, ImportResult>, Iterator<ImportRowResult> {
  /** Results requested ahead of the caller: enough to keep the stream busy, bounded. */
  private static final int RESULTS_AHEAD = 64;

  /** What the queue carries: a result, or the end of the stream (with its failure, if any). */
  private record Item(ImportRowResult result, RuntimeException failure, boolean end) {}

  private final Iterator<UpsertParticipantRequest> rows;
  private final BlockingQueue<Item> queue = new LinkedBlockingQueue<>();
  private ClientCallStreamObserver<UpsertParticipantRequest> requests;
  private boolean halfClosed;
  private Item next;
  private boolean finished;

  ImportCall(Iterator<UpsertParticipantRequest> rows) {
    this.rows = rows;
  }

  @Override
  public void beforeStart(ClientCallStreamObserver<UpsertParticipantRequest> requestStream) {
    this.requests = requestStream;
    requestStream.disableAutoRequestWithInitial(RESULTS_AHEAD);
    // gRPC runs this handler whenever the transport can take more, never twice at once.
    requestStream.setOnReadyHandler(this::sendWhileReady);
  }

  private void sendWhileReady() {
    if (halfClosed) {
      return;
    }
    try {
      while (requests.isReady() && rows.hasNext()) {
        requests.onNext(rows.next());
      }
      if (!rows.hasNext()) {
        halfClosed = true;
        requests.onCompleted();
      }
    } catch (RuntimeException e) {
      // The input itself failed: cancel the call and hand the caller that exception.
      halfClosed = true;
      queue.add(new Item(null, e, true));
      requests.cancel("the input of the import failed", e);
    }
  }

  @Override
  public void onNext(ImportResult value) {
    queue.add(new Item(ImportRowResult.from(value), null, false));
  }

  @Override
  public void onError(Throwable t) {
    queue.add(new Item(null, ParticipantsException.from(t), true));
  }

  @Override
  public void onCompleted() {
    queue.add(new Item(null, null, true));
  }

  @Override
  public boolean hasNext() {
    if (next == null && !finished) {
      try {
        next = queue.take();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        cancel();
        throw ParticipantsException.from(
            Status.CANCELLED.withDescription("interrupted while waiting for import results").withCause(e).asRuntimeException());
      }
      if (next.end()) {
        finished = true;
        if (next.failure() != null) {
          throw next.failure();
        }
        next = null;
      }
    }
    return next != null;
  }

  @Override
  public ImportRowResult next() {
    if (!hasNext()) {
      throw new NoSuchElementException();
    }
    ImportRowResult result = next.result();
    next = null;
    requests.request(1);
    return result;
  }

  /** Cancels the call unless it has ended; rows the server had committed stay written. */
  void cancel() {
    if (!finished) {
      finished = true;
      requests.cancel("import stopped by the client", null);
    }
  }
}
