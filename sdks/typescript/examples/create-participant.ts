// Creates a Participant, then shows how a validation error decodes.
// Run: PARTICIPANTS_ADDR=127.0.0.1:50051 PARTICIPANTS_TOKEN=$(participants token --user crc.ohio) \
//      node dist/examples/create-participant.js [SUBJECT_KEY] [STUDY_OID] [SITE_OID]
import { Code, ErrorReason, createParticipantsClient, decodeError } from "../src/index.js";

const [subjectKey = "SS-0001", studyOid = "S_JUNO(PROD)", siteOid = "S_OHI0(TEST)"] = process.argv.slice(2);
const client = createParticipantsClient({
  baseUrl: `http://${process.env.PARTICIPANTS_ADDR}`,
  token: process.env.PARTICIPANTS_TOKEN ?? "",
});
const scope = { case: "site" as const, value: { studyOid, siteOid } };

const res = await client.upsertParticipant({ scope, subjectKey, contact: { firstName: "Ada", lastName: "Lovelace" } });
console.log(res.created ? "created" : "updated", res.participant?.subjectKey, res.participant?.subjectOid);
try {
  await client.upsertParticipant({ scope, subjectKey, contact: { emailAddress: "not-an-email" } });
} catch (err) {
  const e = decodeError(err);
  console.log(Code[e.code], ErrorReason[e.reason], e.errorCode);
  for (const v of e.fieldViolations) console.log(" ", v.field, ErrorReason[v.reason], "-", v.description);
}
