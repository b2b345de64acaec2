// Package participants is the hand-written helper of the Go SDK of the OpenClinica participant
// service. The generated stubs live in
// github.com/openclinica/participants/sdks/go/gen/openclinica/participants/v1 (package
// participantsv1); this package adds what every caller needs on top of them:
//
//   - Dial / WithBearerToken: a connection that sends "authorization: Bearer <token>" with
//     every call;
//   - DecodeError: turns an error returned by a stub into an *Error holding the typed
//     participantsv1.ErrorReason, the OpenClinica errorCode and the field violations of a
//     validation error;
//   - AllParticipants / AllAuditEvents: iterators over every item of a list, page after page;
//   - Import: streams rows to ImportParticipants and iterates over one ImportRowResult per row.
package participants

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	participantsv1 "github.com/openclinica/participants/sdks/go/gen/openclinica/participants/v1"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every error the service sends.
const ErrorDomain = "participants.openclinica.v1"

const reasonPrefix = "ERROR_REASON_"

// TokenSource returns the bearer token to send with a call (called once per call).
type TokenSource func(ctx context.Context) (string, error)

// StaticToken is a TokenSource that always returns token.
func StaticToken(token string) TokenSource {
	return func(context.Context) (string, error) { return token, nil }
}

// WithBearerToken returns a dial option that adds "authorization: Bearer <token>" to every call
// made on the connection, unary and streaming (ImportParticipants). An empty token sends no
// authorization metadata; a TokenSource error fails the call with codes.Unauthenticated.
func WithBearerToken(source TokenSource) grpc.DialOption {
	// Per-RPC credentials, not an interceptor: one option that covers unary and streaming calls.
	return grpc.WithPerRPCCredentials(bearer{source})
}

type bearer struct{ source TokenSource }

func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	token, err := b.source(ctx)
	if err != nil {
		return nil, fmt.Errorf("participants: bearer token: %w", err)
	}
	if token == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + token}, nil
}

// RequireTransportSecurity is false so that plaintext development connections (Dial's default)
// carry the token too; use TLS transport credentials in production.
func (bearer) RequireTransportSecurity() bool { return false }

// Client is a ParticipantServiceClient and an AuditServiceClient on one connection of its own.
type Client struct {
	participantsv1.ParticipantServiceClient
	participantsv1.AuditServiceClient
	Conn *grpc.ClientConn
}

// Dial connects to target (host:port) and authenticates every call with the token. Without
// transport credentials among opts the connection is plaintext (development); pass
// grpc.WithTransportCredentials(credentials.NewTLS(...)) in production.
func Dial(target string, token TokenSource, opts ...grpc.DialOption) (*Client, error) {
	all := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	all = append(all, opts...)
	all = append(all, WithBearerToken(token))
	conn, err := grpc.NewClient(target, all...)
	if err != nil {
		return nil, err
	}
	return &Client{
		ParticipantServiceClient: participantsv1.NewParticipantServiceClient(conn),
		AuditServiceClient:       participantsv1.NewAuditServiceClient(conn),
		Conn:                     conn,
	}, nil
}

// AllParticipants iterates over every Participant of a ListParticipants query, page after page
// (req's page size per call, from req's page token on), following next_page_token:
//
//	for p, err := range participants.AllParticipants(ctx, client, req) {
//		if err != nil { ... } // the failed page's error (DecodeError decodes it); iteration ends
//	}
//
// req itself is not modified.
func AllParticipants(ctx context.Context, client participantsv1.ParticipantServiceClient,
	req *participantsv1.ListParticipantsRequest, opts ...grpc.CallOption) iter.Seq2[*participantsv1.Participant, error] {
	return func(yield func(*participantsv1.Participant, error) bool) {
		page, _ := proto.Clone(req).(*participantsv1.ListParticipantsRequest)
		if page == nil {
			page = &participantsv1.ListParticipantsRequest{}
		}
		for {
			res, err := client.ListParticipants(ctx, page, opts...)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, p := range res.GetParticipants() {
				if !yield(p, nil) {
					return
				}
			}
			if res.GetNextPageToken() == "" {
				return
			}
			page.PageToken = res.GetNextPageToken()
		}
	}
}

// AllAuditEvents iterates over every audit event of a ListAuditEvents query, oldest first, page
// after page (as AllParticipants).
func AllAuditEvents(ctx context.Context, client participantsv1.AuditServiceClient,
	req *participantsv1.ListAuditEventsRequest, opts ...grpc.CallOption) iter.Seq2[*participantsv1.AuditEvent, error] {
	return func(yield func(*participantsv1.AuditEvent, error) bool) {
		page, _ := proto.Clone(req).(*participantsv1.ListAuditEventsRequest)
		if page == nil {
			page = &participantsv1.ListAuditEventsRequest{}
		}
		for {
			res, err := client.ListAuditEvents(ctx, page, opts...)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, e := range res.GetEvents() {
				if !yield(e, nil) {
					return
				}
			}
			if res.GetNextPageToken() == "" {
				return
			}
			page.PageToken = res.GetNextPageToken()
		}
	}
}

// ImportRowResult is the answer for one row of Import: exactly one of Response and Err is set.
type ImportRowResult struct {
	// Index is the row's 0-based position in the input (answers may arrive out of input order).
	Index int64
	// Response is what UpsertParticipant would have answered, when the row was written (or
	// validated, for validate_only).
	Response *participantsv1.UpsertParticipantResponse
	// Err is why the row was refused: the same *Error DecodeError gives for a unary call.
	Err *Error
}

// Import streams rows to ImportParticipants and iterates over one ImportRowResult per row, as the
// server commits them (not necessarily in input order: see Index):
//
//	for r, err := range participants.Import(ctx, client, slices.Values(rows)) {
//		if err != nil { ... } // the whole stream failed (DecodeError decodes it); iteration ends
//		if r.Err != nil { ... } // this row was refused: r.Err.ReasonName, r.Err.FieldViolations
//	}
//
// rows is pulled on a goroutine of its own, one row at a time: the next row is taken only when
// the previous one has been handed to the transport, which blocks while HTTP/2 flow control says
// the server is behind, so a large input (a file, a channel: range over it in an iter.Seq) is
// never read into memory. A refused row never stops the stream. Give every row a request_id so
// that re-sending the input after a failure of the whole stream writes nothing twice. Give ctx no
// deadline for a long import (the server cuts a client that stays silent instead); cancelling ctx
// or leaving the loop early cancels the stream, and Import returns once rows has stopped being
// pulled, so rows must end or notice ctx being cancelled. Rows already committed stay written.
func Import(ctx context.Context, client participantsv1.ParticipantServiceClient,
	rows iter.Seq[*participantsv1.UpsertParticipantRequest], opts ...grpc.CallOption) iter.Seq2[ImportRowResult, error] {
	return func(yield func(ImportRowResult, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := client.ImportParticipants(ctx, opts...)
		if err != nil {
			yield(ImportRowResult{}, err)
			return
		}
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for row := range rows {
				// An error means the stream is over; Recv below reports why.
				if stream.Send(row) != nil {
					return
				}
			}
			_ = stream.CloseSend()
		}()
		defer func() { cancel(); <-sent }()
		for {
			res, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(ImportRowResult{}, err)
				return
			}
			if !yield(DecodeImportResult(res), nil) {
				return
			}
		}
	}
}

// DecodeImportResult turns a generated ImportResult into an ImportRowResult (its error, a
// google.rpc.Status, decoded by DecodeStatus).
func DecodeImportResult(res *participantsv1.ImportResult) ImportRowResult {
	out := ImportRowResult{Index: res.GetIndex()}
	switch outcome := res.GetOutcome().(type) {
	case *participantsv1.ImportResult_Response:
		out.Response = outcome.Response
	case *participantsv1.ImportResult_Error:
		out.Err = DecodeStatus(outcome.Error)
	default: // an outcome of a newer server that this SDK does not know
		out.Err = DecodeStatus(&spb.Status{Code: int32(codes.Unknown), Message: "the row's outcome is not known to this SDK"})
	}
	return out
}

// DecodeStatus decodes a google.rpc.Status message, such as the error of an ImportResult, into the
// same *Error DecodeError gives for a failed unary call.
func DecodeStatus(s *spb.Status) *Error {
	return decodeStatus(status.FromProto(s))
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

// FieldViolation is one broken validation rule (a google.rpc.BadRequest.FieldViolation).
type FieldViolation struct {
	// Field is the request path, e.g. "contact.first_name" or "subject_key".
	Field string
	// Reason is the typed reason, e.g. participantsv1.ErrorReason_ERROR_REASON_FIRST_NAME_TOO_LONG.
	Reason participantsv1.ErrorReason
	// ReasonName is the reason as sent, e.g. "FIRST_NAME_TOO_LONG".
	ReasonName string
	// Description is a human-readable English description.
	Description string
}

// Error is a failed call decoded from its google.rpc.Status.
type Error struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Message is the status message (plain English).
	Message string
	// Reason is ErrorInfo.reason as the generated enum; ERROR_REASON_UNSPECIFIED when absent or
	// unknown to this SDK version.
	Reason participantsv1.ErrorReason
	// ReasonName is ErrorInfo.reason as sent, e.g. "FIRST_NAME_TOO_LONG".
	ReasonName string
	// Domain is ErrorInfo.domain (ErrorDomain).
	Domain string
	// Metadata is ErrorInfo.metadata: "errorCode" plus "studyOid" / "siteOid" where known.
	Metadata map[string]string
	// FieldViolations lists every broken validation rule (empty unless a validation error).
	FieldViolations []FieldViolation
	// RetryDelay is google.rpc.RetryInfo's delay (STORAGE_UNAVAILABLE), zero when absent.
	RetryDelay time.Duration
	// Status is the decoded status itself.
	Status *status.Status
}

// ErrorCode returns the OpenClinica error code, e.g. "errorCode.firstNameTooLong".
func (e *Error) ErrorCode() string { return e.Metadata["errorCode"] }

func (e *Error) Error() string {
	if e.ReasonName != "" {
		return fmt.Sprintf("%s: %s [%s]", e.Code, e.Message, e.ReasonName)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// GRPCStatus lets status.FromError and status.Code see through an *Error.
func (e *Error) GRPCStatus() *status.Status { return e.Status }

// ReasonFromName maps a reason such as "FIRST_NAME_TOO_LONG" to the generated enum value;
// an unknown name gives ERROR_REASON_UNSPECIFIED.
func ReasonFromName(name string) participantsv1.ErrorReason {
	if v, ok := participantsv1.ErrorReason_value[reasonPrefix+name]; ok && name != "" {
		return participantsv1.ErrorReason(v)
	}
	return participantsv1.ErrorReason_ERROR_REASON_UNSPECIFIED
}

// DecodeError decodes an error returned by a ParticipantService call. It returns nil, false for
// a nil error or one that carries no gRPC status (e.g. a context error before the call).
func DecodeError(err error) (*Error, bool) {
	if err == nil {
		return nil, false
	}
	var decoded *Error
	if errors.As(err, &decoded) {
		return decoded, true
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	return decodeStatus(st), true
}

func decodeStatus(st *status.Status) *Error {
	out := &Error{Code: st.Code(), Message: st.Message(), Metadata: map[string]string{}, Status: st}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			out.ReasonName, out.Domain = d.GetReason(), d.GetDomain()
			out.Reason = ReasonFromName(d.GetReason())
			for k, v := range d.GetMetadata() {
				out.Metadata[k] = v
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				out.FieldViolations = append(out.FieldViolations, FieldViolation{
					Field: v.GetField(), Reason: ReasonFromName(v.GetReason()),
					ReasonName: v.GetReason(), Description: v.GetDescription(),
				})
			}
		case *errdetails.RetryInfo:
			out.RetryDelay = d.GetRetryDelay().AsDuration()
		}
	}
	return out
}
