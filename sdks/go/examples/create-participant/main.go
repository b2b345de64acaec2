// Command create-participant creates a Participant, then shows how a validation error decodes.
//
//	PARTICIPANTS_ADDR=127.0.0.1:50051 PARTICIPANTS_TOKEN=$(participants token --user crc.ohio) \
//	  go run ./examples/create-participant [SUBJECT_KEY] [STUDY_OID] [SITE_OID]
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/openclinica/participants/sdks/go/gen/openclinica/participants/v1"
	"github.com/openclinica/participants/sdks/go/participants"
)

func main() {
	args := []string{"SS-0001", "S_JUNO(PROD)", "S_OHI0(TEST)"} // defaults: the demo catalog
	copy(args, os.Args[1:])
	subjectKey, study, site := args[0], args[1], args[2]
	client, err := participants.Dial(os.Getenv("PARTICIPANTS_ADDR"), participants.StaticToken(os.Getenv("PARTICIPANTS_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	scope := &pb.UpsertParticipantRequest_Site{Site: &pb.SiteScope{StudyOid: study, SiteOid: site}}

	res, err := client.UpsertParticipant(ctx, &pb.UpsertParticipantRequest{Scope: scope, SubjectKey: subjectKey,
		Contact: &pb.ParticipantContact{FirstName: proto.String("Ada"), LastName: proto.String("Lovelace")}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(map[bool]string{true: "created", false: "updated"}[res.GetCreated()], res.GetParticipant().GetSubjectKey(), res.GetParticipant().GetSubjectOid())

	_, err = client.UpsertParticipant(ctx, &pb.UpsertParticipantRequest{Scope: scope, SubjectKey: subjectKey,
		Contact: &pb.ParticipantContact{EmailAddress: proto.String("not-an-email")}})
	if e, ok := participants.DecodeError(err); ok {
		fmt.Println(e.Code, e.Reason, e.ErrorCode())
		for _, v := range e.FieldViolations {
			fmt.Println(" ", v.Field, v.Reason, "-", v.Description)
		}
	}
}
