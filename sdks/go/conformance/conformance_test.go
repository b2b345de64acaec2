// Go runner of the SDK conformance suite (sdks/conformance/cases.json).
//
// Needs a live server: PARTICIPANTS_ADDR (host:port) and PARTICIPANTS_TOKENS_FILE ({"user": "jwt"}).
// Optional: CONFORMANCE_CASES (path of cases.json), CONFORMANCE_OUT (JSON-lines file to which one
// normalized outcome per case is appended, for the driver's cross-language comparison).
// Driven by sdks/run-conformance.sh; skipped when PARTICIPANTS_ADDR is not set.
package conformance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	participantsv1 "github.com/openclinica/participants/sdks/go/gen/openclinica/participants/v1"
	"github.com/openclinica/participants/sdks/go/participants"
)

type suite struct {
	ErrorDomain string            `json:"errorDomain"`
	Cases       []json.RawMessage `json:"cases"`
}

type expectation struct {
	Code            string            `json:"code"`
	Reason          string            `json:"reason"`
	ErrorCode       string            `json:"errorCode"`
	Metadata        map[string]string `json:"metadata"`
	FieldViolations *[]struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"fieldViolations"`
	NoEcho   []string `json:"noEcho"`
	Response any      `json:"response"`
	// Results: ImportParticipants, one expectation per row.
	Results []rowExpectation `json:"results"`
}

type rowExpectation struct {
	Index int64 `json:"index"`
	expectation
}

type testCase struct {
	Name    string          `json:"name"`
	RPC     string          `json:"rpc"`
	User    string          `json:"user"`
	Token   *string         `json:"token"`
	Pages   string          `json:"pages"` // "all": through the paging helper, every page concatenated
	Request json.RawMessage `json:"request"`
	// Requests: ImportParticipants, the rows.
	Requests []json.RawMessage `json:"requests"`
	Expect   expectation       `json:"expect"`
}

// codeNames are the canonical gRPC code names, indexed by code number.
var codeNames = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return c.String()
}

var volatile = map[string]bool{"createTime": true, "updateTime": true, "etag": true, "accessCode": true,
	"nextPageToken": true, "eventId": true, "time": true, "hash": true, "requestId": true}

func TestConformance(t *testing.T) {
	addr := os.Getenv("PARTICIPANTS_ADDR")
	if addr == "" {
		t.Skip("PARTICIPANTS_ADDR not set: no live server to test against")
	}
	casesPath := os.Getenv("CONFORMANCE_CASES")
	if casesPath == "" {
		casesPath = filepath.Join("..", "..", "conformance", "cases.json")
	}
	var s suite
	mustReadJSON(t, casesPath, &s)
	var tokens map[string]string
	tokensPath := os.Getenv("PARTICIPANTS_TOKENS_FILE")
	if tokensPath == "" {
		t.Fatal("PARTICIPANTS_TOKENS_FILE is not set")
	}
	mustReadJSON(t, tokensPath, &tokens)

	var out *os.File
	if p := os.Getenv("CONFORMANCE_OUT"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		out = f
	}

	for _, raw := range s.Cases {
		var c testCase
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("bad case %s: %v", raw, err)
		}
		t.Run(c.Name, func(t *testing.T) {
			token := ""
			if c.Token != nil {
				token = *c.Token
			} else if tok, ok := tokens[c.User]; ok {
				token = tok
			} else {
				t.Fatalf("no token for user %q", c.User)
			}
			outcome, problems := runCase(t, addr, token, s.ErrorDomain, c)
			outcome["pass"] = len(problems) == 0
			if out != nil {
				line, _ := json.Marshal(outcome)
				if _, err := out.Write(append(line, '\n')); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range problems {
				t.Errorf("%s: %s", c.Name, p)
			}
		})
	}
}

func runCase(t *testing.T, addr, token, domain string, c testCase) (map[string]any, []string) {
	client, err := participants.Dial(addr, participants.StaticToken(token))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var response proto.Message
	outcome := map[string]any{"name": c.Name}
	exp := c.Expect
	switch c.RPC {
	case "ImportParticipants":
		var results []any
		var problems []string
		results, problems, err = runImport(t, ctx, client, domain, c)
		if err == nil {
			outcome["code"] = "OK"
			outcome["results"] = results
			if exp.Code != "OK" {
				problems = append(problems, fmt.Sprintf("expected the stream to fail with %s, it ended OK", exp.Code))
			}
			return outcome, problems
		}
	case "UpsertParticipant":
		req := &participantsv1.UpsertParticipantRequest{}
		if err := protojson.Unmarshal(c.Request, req); err != nil {
			t.Fatalf("request: %v", err)
		}
		response, err = client.UpsertParticipant(ctx, req)
	case "GetParticipant":
		req := &participantsv1.GetParticipantRequest{}
		if err := protojson.Unmarshal(c.Request, req); err != nil {
			t.Fatalf("request: %v", err)
		}
		response, err = client.GetParticipant(ctx, req)
	case "ListParticipants":
		req := &participantsv1.ListParticipantsRequest{}
		if err := protojson.Unmarshal(c.Request, req); err != nil {
			t.Fatalf("request: %v", err)
		}
		if c.Pages == "all" {
			all := &participantsv1.ListParticipantsResponse{}
			for p, pageErr := range participants.AllParticipants(ctx, client, req) {
				if pageErr != nil {
					err = pageErr
					break
				}
				all.Participants = append(all.Participants, p)
			}
			response = all
		} else {
			response, err = client.ListParticipants(ctx, req)
		}
	case "ListAuditEvents":
		req := &participantsv1.ListAuditEventsRequest{}
		if err := protojson.Unmarshal(c.Request, req); err != nil {
			t.Fatalf("request: %v", err)
		}
		if c.Pages == "all" {
			all := &participantsv1.ListAuditEventsResponse{}
			for e, pageErr := range participants.AllAuditEvents(ctx, client, req) {
				if pageErr != nil {
					err = pageErr
					break
				}
				all.Events = append(all.Events, e)
			}
			response = all
		} else {
			response, err = client.ListAuditEvents(ctx, req)
		}
	default:
		t.Fatalf("unknown rpc %q", c.RPC)
	}

	if err != nil {
		e, ok := participants.DecodeError(err)
		if !ok {
			return outcome, []string{fmt.Sprintf("not a gRPC status error: %v", err)}
		}
		failed, problems := checkError(e, exp, domain)
		for k, v := range failed {
			outcome[k] = v
		}
		return outcome, problems
	}
	done, problems := checkOK(t, response, exp)
	for k, v := range done {
		outcome[k] = v
	}
	return outcome, problems
}

// runImport streams the case's rows through participants.Import and checks each row's result by
// its index. err is the failure of the whole stream, if any.
func runImport(t *testing.T, ctx context.Context, client *participants.Client, domain string, c testCase) ([]any, []string, error) {
	rows := make([]*participantsv1.UpsertParticipantRequest, len(c.Requests))
	for i, raw := range c.Requests {
		rows[i] = &participantsv1.UpsertParticipantRequest{}
		if err := protojson.Unmarshal(raw, rows[i]); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	wanted := map[int64]expectation{}
	for _, r := range c.Expect.Results {
		wanted[r.Index] = r.expectation
	}
	outcomes := map[int64]map[string]any{}
	var problems []string
	for r, err := range participants.Import(ctx, client, slices.Values(rows)) {
		if err != nil {
			return nil, nil, err
		}
		if _, seen := outcomes[r.Index]; seen || r.Index < 0 || r.Index >= int64(len(rows)) {
			problems = append(problems, fmt.Sprintf("row %d: answered twice or not a row", r.Index))
			continue
		}
		exp, ok := wanted[r.Index]
		if !ok {
			exp = expectation{Code: "?"}
		}
		var row map[string]any
		var rowProblems []string
		if r.Err != nil {
			row, rowProblems = checkError(r.Err, exp, domain)
		} else {
			row, rowProblems = checkOK(t, r.Response, exp)
		}
		row["index"] = r.Index
		outcomes[r.Index] = row
		for _, p := range rowProblems {
			problems = append(problems, fmt.Sprintf("row %d: %s", r.Index, p))
		}
	}
	results := []any{}
	var missing []int
	for i := range rows {
		if row, ok := outcomes[int64(i)]; ok {
			results = append(results, row)
		} else {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("rows never answered: %v", missing))
	}
	return results, problems, nil
}

// checkError gives the normalized outcome of a failed call (or refused import row) and the unmet
// expectations.
func checkError(e *participants.Error, exp expectation, domain string) (map[string]any, []string) {
	outcome := map[string]any{}
	violations := [][]string{}
	for _, v := range e.FieldViolations {
		violations = append(violations, []string{v.Field, v.Reason.String()})
	}
	sortPairs(violations)
	outcome["code"] = codeName(e.Code)
	outcome["reason"] = e.Reason.String()
	outcome["errorCode"] = e.ErrorCode()
	outcome["metadata"] = e.Metadata
	outcome["fieldViolations"] = violations
	if exp.Code == "OK" {
		return outcome, []string{fmt.Sprintf("expected OK, got %v", e)}
	}
	var problems []string
	if codeName(e.Code) != exp.Code {
		problems = append(problems, fmt.Sprintf("code: expected %s, got %s (%s)", exp.Code, codeName(e.Code), e.Message))
	}
	if e.Domain != domain {
		problems = append(problems, fmt.Sprintf("ErrorInfo.domain: expected %s, got %q", domain, e.Domain))
	}
	if e.ReasonName != exp.Reason {
		problems = append(problems, fmt.Sprintf("ErrorInfo.reason: expected %s, got %q", exp.Reason, e.ReasonName))
	}
	if e.Reason == participantsv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
		problems = append(problems, fmt.Sprintf("ErrorInfo.reason %q is not a known ErrorReason", e.ReasonName))
	}
	if e.ErrorCode() != exp.ErrorCode {
		problems = append(problems, fmt.Sprintf("errorCode: expected %s, got %q", exp.ErrorCode, e.ErrorCode()))
	}
	for k, v := range exp.Metadata {
		if got, ok := e.Metadata[k]; !ok || got != v {
			problems = append(problems, fmt.Sprintf("metadata.%s: expected %q, got %q", k, v, got))
		}
	}
	if exp.FieldViolations != nil {
		want := [][]string{}
		for _, v := range *exp.FieldViolations {
			want = append(want, []string{v.Field, v.Reason})
		}
		got := [][]string{}
		for _, v := range e.FieldViolations {
			got = append(got, []string{v.Field, v.ReasonName})
			if v.Reason == participantsv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
				problems = append(problems, fmt.Sprintf("field violation reason %q is not a known ErrorReason", v.ReasonName))
			}
			if v.Description == "" {
				problems = append(problems, fmt.Sprintf("field violation %s has no description", v.Field))
			}
		}
		sortPairs(want)
		sortPairs(got)
		if !reflect.DeepEqual(want, got) {
			problems = append(problems, fmt.Sprintf("field violations: expected %v, got %v", want, got))
		}
	}
	for _, secret := range exp.NoEcho {
		texts := []string{e.Message}
		for _, v := range e.FieldViolations {
			texts = append(texts, v.Description)
		}
		for _, text := range texts {
			if strings.Contains(text, secret) {
				problems = append(problems, fmt.Sprintf("personal data %q echoed in the error", secret))
				break
			}
		}
	}
	return outcome, problems
}

// checkOK gives the normalized outcome of a successful call (or written import row) and the unmet
// expectations.
func checkOK(t *testing.T, response proto.Message, exp expectation) (map[string]any, []string) {
	outcome := map[string]any{}
	printed, err := protojson.MarshalOptions{EmitDefaultValues: true}.Marshal(response)
	if err != nil {
		t.Fatal(err)
	}
	var actual map[string]any
	if err := json.Unmarshal(printed, &actual); err != nil {
		t.Fatal(err)
	}
	outcome["code"] = "OK"
	outcome["response"] = stripVolatile(actual)
	if exp.Code != "OK" {
		return outcome, []string{fmt.Sprintf("expected %s / %s, got OK: %s", exp.Code, exp.Reason, printed)}
	}
	var expected any = map[string]any{}
	if exp.Response != nil {
		expected = exp.Response
	}
	return outcome, match(expected, actual, "response", false)
}

// match is the matcher of cases.json: objects as subsets, "$" matchers, exact scalars.
func match(expected, actual any, path string, missing bool) []string {
	if s, ok := expected.(string); ok && strings.HasPrefix(s, "$") {
		switch {
		case s == "$absent":
			if missing {
				return nil
			}
			return []string{fmt.Sprintf("%s: expected absent, got %v", path, actual)}
		case s == "$empty":
			if missing || actual == "" {
				return nil
			}
			return []string{fmt.Sprintf("%s: expected empty, got %v", path, actual)}
		case missing:
			return []string{fmt.Sprintf("%s: missing, expected %s", path, s)}
		case s == "$nonempty":
			if a, ok := actual.(string); ok && a != "" {
				return nil
			}
			return []string{fmt.Sprintf("%s: expected non-empty, got %v", path, actual)}
		case strings.HasPrefix(s, "$re:"):
			if a, ok := actual.(string); ok && regexp.MustCompile(s[4:]).MatchString(a) {
				return nil
			}
			return []string{fmt.Sprintf("%s: %v does not match %s", path, actual, s[4:])}
		default:
			panic("unknown matcher " + s)
		}
	}
	if e, ok := expected.(map[string]any); ok {
		a, isObj := actual.(map[string]any)
		if missing {
			a, isObj = map[string]any{}, true
		}
		if !isObj {
			return []string{fmt.Sprintf("%s: expected an object, got %v", path, actual)}
		}
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var problems []string
		for _, k := range keys {
			v, present := a[k]
			problems = append(problems, match(e[k], v, path+"."+k, !present)...)
		}
		return problems
	}
	if missing {
		return []string{fmt.Sprintf("%s: missing, expected %v", path, expected)}
	}
	if e, ok := expected.([]any); ok {
		a, isArr := actual.([]any)
		if !isArr || len(a) != len(e) {
			return []string{fmt.Sprintf("%s: expected %v, got %v", path, expected, actual)}
		}
		var problems []string
		for i := range e {
			problems = append(problems, match(e[i], a[i], fmt.Sprintf("%s[%d]", path, i), false)...)
		}
		return problems
	}
	if !reflect.DeepEqual(expected, actual) {
		return []string{fmt.Sprintf("%s: expected %v, got %v", path, expected, actual)}
	}
	return nil
}

func stripVolatile(v any) any {
	if list, ok := v.([]any); ok {
		out := make([]any, len(list))
		for i, item := range list {
			out[i] = stripVolatile(item)
		}
		return out
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for k, val := range m {
		if !volatile[k] {
			out[k] = stripVolatile(val)
		}
	}
	return out
}

func sortPairs(p [][]string) {
	sort.Slice(p, func(i, j int) bool {
		if p[i][0] != p[j][0] {
			return p[i][0] < p[j][0]
		}
		return p[i][1] < p[j][1]
	})
}

func mustReadJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
