package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/baitoru/baitoru-cdc/internal/kobottest"
)

// scenario is what the demo wrote: the keys ("table/op/id") of the events
// that must reach Kobot and of those that must not.
type scenario struct {
	linked, unlinked map[string]bool
}

func key(table, op string, id int64) string { return fmt.Sprintf("%s/%s/%d", table, op, id) }

// receiptKey is the scenario key of a received event.
func receiptKey(r kobottest.Receipt) string {
	var data struct {
		ApplicationID *int64 `json:"application_id"`
		PostingID     *int64 `json:"posting_id"`
	}
	_ = json.Unmarshal(r.Data, &data)
	switch {
	case r.Table == "public.applications" && data.ApplicationID != nil:
		return key(r.Table, r.Op, *data.ApplicationID)
	case data.PostingID != nil:
		return key(r.Table, r.Op, *data.PostingID)
	}
	return r.Table + "/" + r.Op + "/?"
}

// existingRows returns the keys of the read events the link's history
// must bring: company 1's postings and applications as they are before the
// link starts.
func (d *demo) existingRows(ctx context.Context) (map[string]bool, error) {
	conn, err := pgx.Connect(ctx, d.pg.DSN("baitoru"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	keys := map[string]bool{}
	for table, sql := range map[string]string{
		"public.job_postings": `SELECT posting_id FROM job_postings WHERE company_id = ` + linked,
		"public.applications": `SELECT application_id FROM applications WHERE company_id = ` + linked,
	} {
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			return nil, err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			keys[key(table, "read", id)] = true
		}
	}
	return keys, nil
}

// writeRows commits the sample changes, one transaction each, as Baitoru's
// application would: rows of company 1 (linked) and of companies 2 and 3
// (not linked).
func (d *demo) writeRows(ctx context.Context) (*scenario, error) {
	conn, err := pgx.Connect(ctx, d.pg.DSN("baitoru"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	sc := &scenario{linked: map[string]bool{}, unlinked: map[string]bool{}}
	type change struct {
		what   string
		linked bool
		table  string
		op     string
		sql    string
	}
	changes := []change{
		{"2 applications of company 1, one transaction", true, "public.applications", "insert",
			`INSERT INTO applications (company_id, posting_id, applicant_name, applicant_email, answers, source)
			 VALUES (1, 101, '鈴木 一郎', 'ichiro.suzuki@example.com', '{"available_from": "2026-12-03"}', 'web'),
			        (1, 101, '高橋 美咲', 'misaki.takahashi@example.com', '{"days": ["sat", "sun"]}', 'app')
			 RETURNING application_id`},
		{"an application of company 2", false, "public.applications", "insert",
			`INSERT INTO applications (company_id, posting_id, applicant_name, applicant_email)
			 VALUES (2, 102, '田中 健', 'ken.tanaka@example.com') RETURNING application_id`},
		{"a job posting of company 1", true, "public.job_postings", "insert",
			`INSERT INTO job_postings (company_id, title, description, employment_type, wage, wage_unit, conditions, tags, location, published, opens_on)
			 VALUES (1, '週末ランチスタッフ', '土日のランチ営業を手伝ってください。', 'part_time', 1300.00, 'hour',
			         '{"min_days_per_week": 1, "meals": true}', '{週末のみ,まかない付き}', '東京都新宿区西新宿', true, '2026-12-06')
			 RETURNING posting_id`},
		{"a wage raise on posting 103 of company 3", false, "public.job_postings", "update",
			`UPDATE job_postings SET wage = wage + 50, updated_at = now() WHERE posting_id = 103 RETURNING posting_id`},
		{"a new tag on posting 101 of company 1", true, "public.job_postings", "update",
			`UPDATE job_postings SET tags = array_append(tags, '週末歓迎'), updated_at = now() WHERE posting_id = 101 RETURNING posting_id`},
	}
	for _, c := range changes {
		rows, err := conn.Query(ctx, c.sql)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.what, err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.what, err)
		}
		for _, id := range ids {
			if c.linked {
				sc.linked[key(c.table, c.op, id)] = true
			} else {
				sc.unlinked[key(c.table, c.op, id)] = true
			}
		}
		tag := "not linked: must not reach Kobot"
		if c.linked {
			tag = "linked"
		}
		d.printf("committed %s (%s; ids %v)", c.what, tag, ids)
	}
	return sc, nil
}

// metrics is a scraped /metrics page.
type metrics map[string]*dto.MetricFamily

func scrape(url string) (metrics, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("%s: %s %s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// value is the counter or gauge name{labels}, 0 when absent.
func (m metrics) value(name string, labels ...string) float64 {
	var v float64
	m.each(name, func(ls map[string]string, x float64) {
		for i := 0; i+1 < len(labels); i += 2 {
			if ls[labels[i]] != labels[i+1] {
				return
			}
		}
		v += x
	})
	return v
}

// sum is the total of every series of name.
func (m metrics) sum(name string) float64 { return m.value(name) }

func (m metrics) each(name string, fn func(labels map[string]string, v float64)) {
	mf := m[name]
	if mf == nil {
		return
	}
	for _, s := range mf.GetMetric() {
		ls := map[string]string{}
		for _, lp := range s.GetLabel() {
			ls[lp.GetName()] = lp.GetValue()
		}
		switch {
		case s.Counter != nil:
			fn(ls, s.GetCounter().GetValue())
		case s.Gauge != nil:
			fn(ls, s.GetGauge().GetValue())
		case s.Untyped != nil:
			fn(ls, s.GetUntyped().GetValue())
		}
	}
}
