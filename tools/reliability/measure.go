package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/jackc/pgx/v5"

	"github.com/baitoru/baitoru-cdc/internal/kobottest"
)

// result is the figures of one stage.
type result struct {
	ID    string `json:"id"`    // "1", "2a", ...
	Title string `json:"title"` // what was done
	// Rows committed to applications (read from the database at the end).
	Rows int `json:"rows_committed"`
	// Published is the number of distinct events that reached the topic
	// (its audit queue); Messages counts re-sends too.
	Published int `json:"events_published"`
	Messages  int `json:"messages_published"`
	// Expected (event, account) pushes: every row of a linked company, once
	// per linked account, except those Kobot rejects on purpose.
	Expected  int `json:"pushes_expected"`
	Delivered int `json:"pushes_delivered"`
	// Lost = committed rows with no event + expected pushes Kobot never
	// processed. Must be 0.
	LostEvents int `json:"lost_events"`
	LostPushes int `json:"lost_pushes"`
	// Duplicates Kobot processed: after the sink had received a 2xx for
	// the same push (the delivery log's job), or after every earlier 2xx
	// reached the sink too late (only Kobot's own dedup can absorb those).
	DupAfterAck  int `json:"duplicates_after_ack"`
	DupAfterLate int `json:"duplicates_after_late_answer"`
	// Unexpected pushes: to an account not linked to the row's company, or
	// of no committed row. Must be 0.
	Unexpected int `json:"unexpected_pushes"`
	BadPushes  int `json:"bad_signatures"`
	// Rejected pushes: refused by Kobot on purpose (4xx); their messages
	// must be in the DLQ.
	Rejected int            `json:"pushes_rejected"`
	DLQ      map[string]int `json:"dlq_by_reason,omitempty"`
	// Recovery: from the end of each fault until every row committed
	// before it had reached Kobot.
	Recovery []time.Duration `json:"recovery_ns"`
	// Takeover (scenario 6): from SIGKILL of the streaming connector until
	// the standby streams.
	Takeover []time.Duration `json:"takeover_ns,omitempty"`
	Elapsed  time.Duration   `json:"elapsed_ns"`
	Notes    []string        `json:"notes,omitempty"`
	Failures []string        `json:"failures,omitempty"`

	// allowAfterAck: the stage kills the sink, so a push can succeed
	// without the delivery log learning it.
	allowAfterAck bool
	// allowAfterLate: Kobot answers too late on purpose.
	allowAfterLate bool
	// droppedField: see scenario.droppedField.
	droppedField string
	// after, when set, adds the scenario's own checks to the figures.
	after func(r *result)
}

// Lost is every loss, the column that must be 0.
func (r *result) Lost() int { return r.LostEvents + r.LostPushes }

func (r *result) fail(format string, a ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, a...))
}

func (r *result) note(format string, a ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, a...))
}

// check applies the pass criteria every stage shares.
func (r *result) check() {
	if r.Lost() > 0 {
		r.fail("%d lost (%d committed rows without an event, %d pushes never processed by Kobot)", r.Lost(), r.LostEvents, r.LostPushes)
	}
	if r.Unexpected > 0 {
		r.fail("%d pushes Kobot should not have received", r.Unexpected)
	}
	if r.BadPushes > 0 {
		r.fail("%d pushes failed Kobot's signature check", r.BadPushes)
	}
	if r.DupAfterAck > 0 && !r.allowAfterAck {
		r.fail("%d duplicates pushed after the sink had received Kobot's 2xx (the delivery log should have dropped them)", r.DupAfterAck)
	}
	if r.DupAfterLate > 0 && !r.allowAfterLate {
		r.fail("%d duplicates after late answers, but Kobot was never slow in this stage", r.DupAfterLate)
	}
}

// row is one committed applications row.
type row struct {
	id      int64
	company string
}

func (st *stage) rows(ctx context.Context) ([]row, error) {
	conn, err := pgx.Connect(ctx, st.srcDSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rs, err := conn.Query(ctx, `SELECT application_id, company_id FROM applications ORDER BY application_id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rs, func(r pgx.CollectableRow) (row, error) {
		var x row
		var c int64
		err := r.Scan(&x.id, &c)
		x.company = strconv.FormatInt(c, 10)
		return x, err
	})
}

// pushKey is a push by row instead of event id.
type pushKey struct {
	account string
	appID   int64
}

// expected returns the pushes the rows must produce, without those to
// rejected accounts, and how many those were.
func expected(rows []row, rejected map[string]bool) (map[pushKey]bool, int) {
	want := map[pushKey]bool{}
	refused := 0
	for _, r := range rows {
		for _, a := range accountsOf(r.company) {
			if rejected[a] {
				refused++
				continue
			}
			want[pushKey{a, r.id}] = true
		}
	}
	return want, refused
}

// byRow folds the receiver's pushes by (account, application id).
func byRow(ps map[kobottest.Pair]kobottest.Push) map[pushKey][]kobottest.Push {
	out := map[pushKey][]kobottest.Push{}
	for pair, p := range ps {
		k := pushKey{pair.Account, p.ApplicationID}
		out[k] = append(out[k], p)
	}
	return out
}

// settle waits until Kobot processed every expected push and the queue is
// drained (or timeout), then measures the stage.
func (st *stage) settle(ctx context.Context, r *result, timeout time.Duration, rejected map[string]bool) error {
	st.stopWriter()
	deadline := time.Now().Add(timeout)
	var rows []row
	var err error
	for {
		if rows, err = st.rows(ctx); err != nil {
			return fmt.Errorf("read rows: %w", err)
		}
		want, _ := expected(rows, rejected)
		got := byRow(st.kobot.Pairs())
		missing := 0
		for k := range want {
			if !processed(got[k]) {
				missing++
			}
		}
		if missing == 0 && st.queueEmpty(ctx) {
			break
		}
		if time.Now().After(deadline) {
			st.logf("settle: %d pushes still missing after %s", missing, timeout)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Anything late (duplicates, unlinked pushes) has a moment to arrive.
	time.Sleep(2 * time.Second)
	return st.measure(ctx, r, rows, rejected)
}

func processed(ps []kobottest.Push) bool {
	for _, p := range ps {
		if p.Processed > 0 {
			return true
		}
	}
	return false
}

// queueEmpty reports whether the main queue holds no message (visible,
// in flight or delayed).
func (st *stage) queueEmpty(ctx context.Context) bool {
	out, err := st.e.emu.SQS().GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(st.queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return false
	}
	for _, v := range out.Attributes {
		if n, _ := strconv.Atoi(v); n > 0 {
			return false
		}
	}
	return true
}

func (st *stage) measure(ctx context.Context, r *result, rows []row, rejected map[string]bool) error {
	r.Rows = len(rows)
	want, refused := expected(rows, rejected)
	r.Expected, r.Rejected = len(want), refused
	committed := make(map[int64]string, len(rows))
	for _, x := range rows {
		committed[x.id] = x.company
	}

	// Kobot's side.
	got := byRow(st.kobot.Pairs())
	first := map[pushKey]time.Time{}
	for k, ps := range got {
		if len(ps) > 1 {
			r.fail("row %d reached %s under %d different event ids", k.appID, k.account, len(ps))
		}
		company, ok := committed[k.appID]
		linked := ok && slices.Contains(accountsOf(company), k.account)
		for _, p := range ps {
			if p.Processed == 0 {
				continue
			}
			if !linked || rejected[k.account] {
				r.Unexpected += p.Processed
				continue
			}
			afterAck, afterLate := p.Duplicates()
			r.DupAfterAck += afterAck
			r.DupAfterLate += afterLate
			if f, ok := first[k]; !ok || p.First.Before(f) {
				first[k] = p.First
			}
		}
	}
	for k := range want {
		if _, ok := first[k]; ok {
			r.Delivered++
		} else {
			r.LostPushes++
		}
	}
	r.BadPushes = len(st.kobot.Bad())
	for _, b := range st.kobot.Bad()[:min(3, r.BadPushes)] {
		r.note("bad push: %s", b)
	}

	// The topic's side: every committed row has exactly one event id.
	c, err := st.e.emu.Collect(ctx, st.audit, len(rows)+st.otherEvents, 60*time.Second)
	if err != nil {
		return err
	}
	r.Published, r.Messages = len(c.ByID), len(c.Bodies)
	if len(c.Conflicts) > 0 {
		if bad := conflicts(c.Bodies, c.Conflicts, r.droppedField); len(bad) > 0 {
			r.fail("%d events re-sent with a different body, e.g. %s", len(bad), bad[0])
		} else {
			r.note("%d events re-sent after the mapping change, differing only by data.%s", len(c.Conflicts), r.droppedField)
		}
	}
	eventOf := map[int64]string{}
	others := 0
	for id, body := range c.ByID {
		var ev struct {
			Table string `json:"table"`
			Data  struct {
				ApplicationID int64 `json:"application_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			r.fail("unparsable event %s", id)
			continue
		}
		if ev.Table != "public.applications" {
			others++
			continue
		}
		if prev, dup := eventOf[ev.Data.ApplicationID]; dup {
			r.fail("row %d published under two event ids: %s and %s", ev.Data.ApplicationID, prev, id)
		}
		eventOf[ev.Data.ApplicationID] = id
		if _, ok := committed[ev.Data.ApplicationID]; !ok {
			r.fail("event %s of row %d, which is not committed", id, ev.Data.ApplicationID)
		}
	}
	for _, x := range rows {
		if _, ok := eventOf[x.id]; !ok {
			r.LostEvents++
		}
	}
	if others != st.otherEvents {
		r.fail("%d events of other tables on the topic, want the %d the scenario had published", others, st.otherEvents)
	}
	r.Published -= others

	// The DLQ, read until 2 s pass without a message: on a loaded machine
	// the emulator hands out a few hundred messages in 2 s, fewer than a
	// scenario can put there.
	var ms []sqstypes.Message
	for {
		got, err := st.e.emu.ReceiveAll(ctx, st.dlqURL, 0, 2*time.Second)
		if err != nil {
			return err
		}
		if len(got) == 0 {
			break
		}
		ms = append(ms, got...)
	}
	for _, m := range ms {
		code := aws.ToString(m.MessageAttributes["reason_code"].StringValue)
		if code == "" {
			code = "redrive"
		}
		if r.DLQ == nil {
			r.DLQ = map[string]int{}
		}
		r.DLQ[code]++
	}

	// Recovery after each fault: until every push of a row committed
	// before the fault ended, and of the first transaction committed
	// after it, was processed: the backlog is delivered and new rows flow.
	if r.LostPushes == 0 {
		for _, f := range st.faults {
			from, to := f.from, f.to
			if to == 0 {
				from, to = 1, st.w.firstIDAfter(f.at)
			}
			var rec time.Duration
			for k := range want {
				if k.appID >= from && k.appID <= to {
					rec = max(rec, first[k].Sub(f.at))
				}
			}
			r.Recovery = append(r.Recovery, rec)
		}
	}
	r.check()
	return nil
}

// conflicts returns the ids among ids whose bodies differ by more than the
// data field dropped (every id when dropped is empty).
func conflicts(bodies, ids []string, dropped string) []string {
	if dropped == "" {
		return ids
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	seen := map[string]string{} // id → normalized body
	bad := map[string]bool{}
	for _, b := range bodies {
		var ev map[string]any
		if err := json.Unmarshal([]byte(b), &ev); err != nil {
			continue
		}
		id, _ := ev["id"].(string)
		if !want[id] {
			continue
		}
		if data, ok := ev["data"].(map[string]any); ok {
			delete(data, dropped)
		}
		norm, _ := json.Marshal(ev)
		if prev, ok := seen[id]; ok && prev != string(norm) {
			bad[id] = true
		}
		seen[id] = string(norm)
	}
	var out []string
	for _, id := range ids {
		if bad[id] {
			out = append(out, id)
			delete(bad, id)
		}
	}
	return out
}
