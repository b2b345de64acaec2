package com.openclinica.participants.sdk;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.reflect.TypeToken;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import com.openclinica.participants.v1.ErrorReason;
import com.openclinica.participants.v1.GetParticipantRequest;
import com.openclinica.participants.v1.ListAuditEventsRequest;
import com.openclinica.participants.v1.ListAuditEventsResponse;
import com.openclinica.participants.v1.ListParticipantsRequest;
import com.openclinica.participants.v1.ListParticipantsResponse;
import com.openclinica.participants.v1.UpsertParticipantRequest;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Java runner of the SDK conformance suite (sdks/conformance/cases.json).
 *
 * <p>Needs a live server: PARTICIPANTS_ADDR (host:port) and PARTICIPANTS_TOKENS_FILE ({"user": "jwt"}).
 * Optional: CONFORMANCE_CASES (path of cases.json), CONFORMANCE_OUT (JSON-lines file to which one
 * normalized outcome per case is appended, for the driver's cross-language comparison). Driven by
 * sdks/run-conformance.sh; skipped when PARTICIPANTS_ADDR is not set.
 */
class ConformanceTest {
  private static final Set<String> VOLATILE = Set.of("createTime", "updateTime", "etag", "accessCode",
      "nextPageToken", "eventId", "time", "hash", "requestId");
  private static final Gson GSON = new Gson();

  @TestFactory
  Stream<DynamicTest> conformance() throws IOException {
    String addr = System.getenv("PARTICIPANTS_ADDR");
    Assumptions.assumeTrue(addr != null && !addr.isEmpty(), "PARTICIPANTS_ADDR not set: no live server to test against");
    String casesEnv = System.getenv("CONFORMANCE_CASES");
    Path casesPath = casesEnv != null ? Path.of(casesEnv) : Path.of("..", "conformance", "cases.json");
    JsonObject suite = JsonParser.parseString(Files.readString(casesPath, StandardCharsets.UTF_8)).getAsJsonObject();
    String tokensFile = System.getenv("PARTICIPANTS_TOKENS_FILE");
    if (tokensFile == null) {
      throw new IllegalStateException("PARTICIPANTS_TOKENS_FILE is not set");
    }
    Map<String, String> tokens = GSON.fromJson(
        Files.readString(Path.of(tokensFile), StandardCharsets.UTF_8), new TypeToken<Map<String, String>>() {}.getType());
    String domain = suite.get("errorDomain").getAsString();
    String out = System.getenv("CONFORMANCE_OUT");

    List<DynamicTest> tests = new ArrayList<>();
    for (JsonElement element : suite.getAsJsonArray("cases")) {
      JsonObject c = element.getAsJsonObject();
      String name = c.get("name").getAsString();
      tests.add(DynamicTest.dynamicTest(name, () -> {
        String token = c.has("token") ? c.get("token").getAsString() : tokens.get(c.get("user").getAsString());
        if (token == null) {
          throw new IllegalStateException("no token for user " + c.get("user"));
        }
        JsonObject outcome = new JsonObject();
        outcome.addProperty("name", name);
        List<String> problems = runCase(addr, token, domain, c, outcome);
        outcome.addProperty("pass", problems.isEmpty());
        if (out != null) {
          Files.writeString(Path.of(out), GSON.toJson(outcome) + "\n", StandardCharsets.UTF_8,
              StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        }
        assertTrue(problems.isEmpty(), name + ": " + String.join("; ", problems));
      }));
    }
    return tests.stream();
  }

  private static List<String> runCase(String addr, String token, String domain, JsonObject c, JsonObject outcome)
      throws IOException {
    JsonObject exp = c.getAsJsonObject("expect");
    String request = c.has("request") ? c.get("request").toString() : "{}";
    Message response;
    boolean allPages = c.has("pages") && c.get("pages").getAsString().equals("all");
    try (ParticipantsClient client = ParticipantsClient.forTarget(addr, token)) {
      try {
        switch (c.get("rpc").getAsString()) {
          case "ImportParticipants" -> {
            return runImport(client, domain, c, outcome);
          }
          case "UpsertParticipant" -> {
            UpsertParticipantRequest.Builder req = UpsertParticipantRequest.newBuilder();
            JsonFormat.parser().merge(request, req);
            response = client.upsertParticipant(req.build());
          }
          case "GetParticipant" -> {
            GetParticipantRequest.Builder req = GetParticipantRequest.newBuilder();
            JsonFormat.parser().merge(request, req);
            response = client.getParticipant(req.build());
          }
          case "ListParticipants" -> {
            ListParticipantsRequest.Builder req = ListParticipantsRequest.newBuilder();
            JsonFormat.parser().merge(request, req);
            if (allPages) { // through the paging helper, every page as one response
              response = ListParticipantsResponse.newBuilder()
                  .addAllParticipants(client.listAllParticipants(req.build()).toList()).build();
            } else {
              response = client.listParticipants(req.build());
            }
          }
          case "ListAuditEvents" -> {
            ListAuditEventsRequest.Builder req = ListAuditEventsRequest.newBuilder();
            JsonFormat.parser().merge(request, req);
            if (allPages) {
              response = ListAuditEventsResponse.newBuilder()
                  .addAllEvents(client.listAllAuditEvents(req.build()).toList()).build();
            } else {
              response = client.listAuditEvents(req.build());
            }
          }
          default -> throw new IllegalArgumentException("unknown rpc " + c.get("rpc"));
        }
      } catch (ParticipantsException e) {
        return checkError(exp, e, domain, outcome);
      }
    }
    return checkOk(exp, response, outcome);
  }

  /** Streams the case's rows through importParticipants; checks each row's result by its index. */
  private static List<String> runImport(ParticipantsClient client, String domain, JsonObject c, JsonObject outcome)
      throws IOException {
    List<UpsertParticipantRequest> rows = new ArrayList<>();
    for (JsonElement row : c.getAsJsonArray("requests")) {
      UpsertParticipantRequest.Builder req = UpsertParticipantRequest.newBuilder();
      JsonFormat.parser().merge(row.toString(), req);
      rows.add(req.build());
    }
    Map<Long, JsonObject> wanted = new TreeMap<>();
    JsonObject exp = c.getAsJsonObject("expect");
    if (exp.has("results")) {
      for (JsonElement r : exp.getAsJsonArray("results")) {
        wanted.put(r.getAsJsonObject().get("index").getAsLong(), r.getAsJsonObject());
      }
    }
    Map<Long, JsonObject> outcomes = new TreeMap<>();
    List<String> problems = new ArrayList<>();
    try (Stream<ImportRowResult> results = client.importParticipants(rows)) {
      for (ImportRowResult r : (Iterable<ImportRowResult>) results::iterator) {
        if (outcomes.containsKey(r.index()) || r.index() < 0 || r.index() >= rows.size()) {
          problems.add("row " + r.index() + ": answered twice or not a row");
          continue;
        }
        JsonObject want = wanted.getOrDefault(r.index(), new JsonObject());
        if (!want.has("code")) {
          want.addProperty("code", "?");
        }
        JsonObject row = new JsonObject();
        row.addProperty("index", r.index());
        List<String> rowProblems = r.ok() ? checkOk(want, r.response(), row) : checkError(want, r.error(), domain, row);
        outcomes.put(r.index(), row);
        rowProblems.forEach(p -> problems.add("row " + r.index() + ": " + p));
      }
    }
    List<Long> missing = new ArrayList<>();
    for (long i = 0; i < rows.size(); i++) {
      if (!outcomes.containsKey(i)) {
        missing.add(i);
      }
    }
    if (!missing.isEmpty()) {
      problems.add("rows never answered: " + missing);
    }
    JsonArray results = new JsonArray();
    outcomes.values().forEach(results::add);
    outcome.addProperty("code", "OK");
    outcome.add("results", results);
    if (!exp.get("code").getAsString().equals("OK")) {
      problems.add("expected the stream to fail with " + exp.get("code").getAsString() + ", it ended OK");
    }
    return problems;
  }

  /** The normalized outcome of a failed call (or refused import row), and the unmet expectations. */
  private static List<String> checkError(JsonObject exp, ParticipantsException e, String domain, JsonObject outcome) {
    String expCode = exp.get("code").getAsString();
    List<String> problems = new ArrayList<>();
    List<List<String>> violations = new ArrayList<>();
    for (ParticipantsException.FieldViolation v : e.fieldViolations()) {
      violations.add(List.of(v.field(), v.reason().name()));
    }
    sortPairs(violations);
    outcome.addProperty("code", e.code().name());
    outcome.addProperty("reason", e.reason().name());
    outcome.addProperty("errorCode", e.errorCode());
    outcome.add("metadata", GSON.toJsonTree(new TreeMap<>(e.metadata())));
    outcome.add("fieldViolations", GSON.toJsonTree(violations));
    if (expCode.equals("OK")) {
      return List.of("expected OK, got " + e.getMessage());
    }
    if (!e.code().name().equals(expCode)) {
      problems.add("code: expected " + expCode + ", got " + e.code().name() + " (" + e.statusMessage() + ")");
    }
    if (!e.domain().equals(domain)) {
      problems.add("ErrorInfo.domain: expected " + domain + ", got \"" + e.domain() + "\"");
    }
    String expReason = exp.get("reason").getAsString();
    if (!e.reasonName().equals(expReason)) {
      problems.add("ErrorInfo.reason: expected " + expReason + ", got \"" + e.reasonName() + "\"");
    }
    if (e.reason() == ErrorReason.ERROR_REASON_UNSPECIFIED) {
      problems.add("ErrorInfo.reason \"" + e.reasonName() + "\" is not a known ErrorReason");
    }
    String expErrorCode = exp.get("errorCode").getAsString();
    if (!e.errorCode().equals(expErrorCode)) {
      problems.add("errorCode: expected " + expErrorCode + ", got \"" + e.errorCode() + "\"");
    }
    if (exp.has("metadata")) {
      for (Map.Entry<String, JsonElement> m : exp.getAsJsonObject("metadata").entrySet()) {
        String got = e.metadata().get(m.getKey());
        if (!m.getValue().getAsString().equals(got)) {
          problems.add("metadata." + m.getKey() + ": expected " + m.getValue() + ", got " + got);
        }
      }
    }
    if (exp.has("fieldViolations")) {
      List<List<String>> want = new ArrayList<>();
      for (JsonElement v : exp.getAsJsonArray("fieldViolations")) {
        want.add(List.of(v.getAsJsonObject().get("field").getAsString(), v.getAsJsonObject().get("reason").getAsString()));
      }
      List<List<String>> got = new ArrayList<>();
      for (ParticipantsException.FieldViolation v : e.fieldViolations()) {
        got.add(List.of(v.field(), v.reasonName()));
        if (v.reason() == ErrorReason.ERROR_REASON_UNSPECIFIED) {
          problems.add("field violation reason \"" + v.reasonName() + "\" is not a known ErrorReason");
        }
        if (v.description().isEmpty()) {
          problems.add("field violation " + v.field() + " has no description");
        }
      }
      sortPairs(want);
      sortPairs(got);
      if (!want.equals(got)) {
        problems.add("field violations: expected " + want + ", got " + got);
      }
    }
    if (exp.has("noEcho")) {
      for (JsonElement secret : exp.getAsJsonArray("noEcho")) {
        List<String> texts = new ArrayList<>();
        texts.add(e.statusMessage());
        e.fieldViolations().forEach(v -> texts.add(v.description()));
        if (texts.stream().anyMatch(t -> t.contains(secret.getAsString()))) {
          problems.add("personal data " + secret + " echoed in the error");
        }
      }
    }
    return problems;
  }

  /** The normalized outcome of a successful call (or written import row), and the unmet expectations. */
  private static List<String> checkOk(JsonObject exp, Message response, JsonObject outcome) throws IOException {
    String expCode = exp.get("code").getAsString();
    List<String> problems = new ArrayList<>();
    JsonElement actual = JsonParser.parseString(JsonFormat.printer().alwaysPrintFieldsWithNoPresence().print(response));
    outcome.addProperty("code", "OK");
    outcome.add("response", stripVolatile(actual));
    if (!expCode.equals("OK")) {
      return List.of("expected " + expCode + " / " + exp.get("reason") + ", got OK: " + actual);
    }
    JsonElement expected = exp.has("response") ? exp.get("response") : new JsonObject();
    match(expected, actual, "response", false, problems);
    return problems;
  }

  /** The matcher of cases.json: objects as subsets, "$" matchers, exact scalars. */
  static void match(JsonElement expected, JsonElement actual, String path, boolean missing, List<String> problems) {
    if (expected.isJsonPrimitive() && expected.getAsJsonPrimitive().isString()
        && expected.getAsString().startsWith("$")) {
      String m = expected.getAsString();
      boolean isString = actual != null && actual.isJsonPrimitive() && actual.getAsJsonPrimitive().isString();
      if (m.equals("$absent")) {
        if (!missing) problems.add(path + ": expected absent, got " + actual);
      } else if (m.equals("$empty")) {
        if (!missing && !(isString && actual.getAsString().isEmpty())) problems.add(path + ": expected empty, got " + actual);
      } else if (missing) {
        problems.add(path + ": missing, expected " + m);
      } else if (m.equals("$nonempty")) {
        if (!isString || actual.getAsString().isEmpty()) problems.add(path + ": expected non-empty, got " + actual);
      } else if (m.startsWith("$re:")) {
        if (!isString || !Pattern.compile(m.substring(4)).matcher(actual.getAsString()).find()) {
          problems.add(path + ": " + actual + " does not match " + m.substring(4));
        }
      } else {
        throw new IllegalArgumentException("unknown matcher " + m);
      }
      return;
    }
    if (expected.isJsonObject()) {
      JsonElement obj = missing ? new JsonObject() : actual;
      if (obj == null || !obj.isJsonObject()) {
        problems.add(path + ": expected an object, got " + actual);
        return;
      }
      for (Map.Entry<String, JsonElement> e : expected.getAsJsonObject().entrySet()) {
        JsonObject o = obj.getAsJsonObject();
        match(e.getValue(), o.get(e.getKey()), path + "." + e.getKey(), !o.has(e.getKey()), problems);
      }
      return;
    }
    if (missing) {
      problems.add(path + ": missing, expected " + expected);
      return;
    }
    if (expected.isJsonArray()) {
      JsonArray e = expected.getAsJsonArray();
      if (actual == null || !actual.isJsonArray() || actual.getAsJsonArray().size() != e.size()) {
        problems.add(path + ": expected " + expected + ", got " + actual);
        return;
      }
      for (int i = 0; i < e.size(); i++) {
        match(e.get(i), actual.getAsJsonArray().get(i), path + "[" + i + "]", false, problems);
      }
      return;
    }
    if (!expected.equals(actual)) {
      problems.add(path + ": expected " + expected + ", got " + actual);
    }
  }

  private static JsonElement stripVolatile(JsonElement value) {
    if (value.isJsonArray()) {
      JsonArray out = new JsonArray();
      for (JsonElement item : value.getAsJsonArray()) {
        out.add(stripVolatile(item));
      }
      return out;
    }
    if (!value.isJsonObject()) {
      return value;
    }
    JsonObject out = new JsonObject();
    for (Map.Entry<String, JsonElement> e : value.getAsJsonObject().entrySet()) {
      if (!VOLATILE.contains(e.getKey())) {
        out.add(e.getKey(), stripVolatile(e.getValue()));
      }
    }
    return out;
  }

  private static void sortPairs(List<List<String>> pairs) {
    pairs.sort(Comparator.<List<String>, String>comparing(p -> p.get(0)).thenComparing(p -> p.get(1)));
  }
}
