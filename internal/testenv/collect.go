package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Collected is what Collect received: every body (duplicates included) and
// the body of each distinct event id.
type Collected struct {
	Bodies []string
	ByID   map[string]string
	// Conflicts lists event ids received twice with different bodies (a
	// re-sent change must be identical).
	Conflicts []string
}

// record adds received messages (the caller holds the lock).
func (c *Collected) record(msgs []types.Message) {
	for _, m := range msgs {
		body := aws.ToString(m.Body)
		var ev struct{ ID string }
		_ = json.Unmarshal([]byte(body), &ev)
		if prev, dup := c.ByID[ev.ID]; dup && prev != body {
			c.Conflicts = append(c.Conflicts, ev.ID)
		}
		c.ByID[ev.ID] = body
		c.Bodies = append(c.Bodies, body)
	}
}

// Duplicates is the number of messages that repeated an event id.
func (c *Collected) Duplicates() int { return len(c.Bodies) - len(c.ByID) }

// Collect receives messages from queueURL with several concurrent long
// pollers until want distinct CloudEvents ids arrived or timeout passed.
// Messages are not deleted: they are left invisible for an hour, which
// halves the emulator's work. It returns what it got; an error only when
// the emulator kept failing.
func (e *Emulator) Collect(ctx context.Context, queueURL string, want int, timeout time.Duration) (*Collected, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		lastErr error
	)
	c := &Collected{ByID: map[string]string{}}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				done := len(c.ByID) >= want
				mu.Unlock()
				if done {
					cancel()
					return
				}
				out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
					QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
					VisibilityTimeout: 3600, MessageAttributeNames: []string{"All"},
				})
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						lastErr = err
						mu.Unlock()
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				mu.Lock()
				c.record(out.Messages)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(c.ByID) < want && lastErr != nil {
		return c, fmt.Errorf("collect from %s: %d of %d events; last error: %w", queueURL, len(c.ByID), want, lastErr)
	}
	return c, nil
}

// CollectAll receives every message of queueURL, as Collect does, until no
// new message arrived for idle. Unlike Collect with a timeout, it never
// cancels a receive in flight (the emulator would have hidden the messages
// of a cancelled receive for an hour without anyone reading them), so what
// it returns is everything the queue held. It gives up after limit.
func (e *Emulator) CollectAll(ctx context.Context, queueURL string, idle, limit time.Duration) (*Collected, error) {
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		lastErr error
		lastNew = time.Now()
	)
	start := time.Now()
	c := &Collected{ByID: map[string]string{}}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				quiet := time.Since(lastNew) > idle
				mu.Unlock()
				if quiet || time.Since(start) > limit || ctx.Err() != nil {
					return
				}
				out, err := e.sqs.ReceiveMessage(context.WithoutCancel(ctx), &sqs.ReceiveMessageInput{
					QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
					VisibilityTimeout: 3600, MessageAttributeNames: []string{"All"},
				})
				mu.Lock()
				if err != nil {
					lastErr = err
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
					continue
				}
				c.record(out.Messages)
				if len(out.Messages) > 0 {
					lastNew = time.Now()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if time.Since(start) > limit {
		return c, fmt.Errorf("collect from %s: messages kept arriving for %s (%d so far; last error: %v)", queueURL, limit, len(c.Bodies), lastErr)
	}
	return c, nil
}
