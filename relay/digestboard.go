package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/tasks"
)

// DigestBoard remembers, per Slack destination and exam, the digest
// message posted today and who it lists, so that a later burst for the
// same exam updates that message (chat.update) instead of posting another.
//
// Why update rather than reply in a thread: staff scan the channel for
// one line per exam, and the number they want is the total registered so
// far; a thread hides the new names one click away and still needs the
// parent's count fixed.
type DigestBoard struct {
	Redis    redis.UniversalClient
	Location *time.Location // "today" is the school's day
}

type boardEntry struct {
	Ref   string             `json:"ref"`
	Items []tasks.DigestItem `json:"items"`
}

func (b DigestBoard) key(destination, group string, now time.Time) string {
	return fmt.Sprintf("exam-relay:digest-board:%s:%s:%s", destination, group, now.In(b.Location).Format(time.DateOnly))
}

// post shows batch on Slack, each Slack request made through call: merged into today's message for the exam when
// there is one, else as a new message that later batches will update.
func (b DigestBoard) post(ctx context.Context, slack SlackMessages, destination string, batch tasks.DigestBatch,
	render func(tasks.DigestBatch) (string, error), call func(func() error) error) error {
	key := b.key(destination, batch.Group, time.Now())
	// Two batches of one exam at once (a burst split at max size) must
	// not both post a new message.
	locked, err := b.Redis.SetNX(ctx, key+":lock", "1", 30*time.Second).Result()
	if err != nil {
		return temporary(fmt.Errorf("digest board: %w", err))
	}
	if !locked {
		return rateLimited(time.Second, errors.New("another digest for this exam is being posted"))
	}
	defer b.Redis.Del(context.WithoutCancel(ctx), key+":lock")

	var entry boardEntry
	if raw, err := b.Redis.Get(ctx, key).Bytes(); err == nil {
		_ = json.Unmarshal(raw, &entry)
	} else if !errors.Is(err, redis.Nil) {
		return temporary(fmt.Errorf("digest board: %w", err))
	}
	merged := mergeItems(entry.Items, batch.Items)
	text, err := render(tasks.DigestBatch{Group: batch.Group, Items: merged})
	if err != nil {
		return err
	}
	if entry.Ref != "" {
		err = call(func() error { return slack.UpdateMessage(ctx, entry.Ref, text) })
		if err == nil {
			return b.save(ctx, key, boardEntry{Ref: entry.Ref, Items: merged})
		}
		if !errors.Is(err, errMessageGone) {
			return err
		}
		// Someone deleted it: start today's message again.
	}
	var ref string
	err = call(func() (err error) {
		ref, err = slack.PostMessage(ctx, text)
		return err
	})
	if err != nil {
		return err
	}
	return b.save(ctx, key, boardEntry{Ref: ref, Items: merged})
}

func (b DigestBoard) save(ctx context.Context, key string, e boardEntry) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return nil
	}
	// Posted is posted: failing to remember it only costs a new message
	// instead of an update next time.
	_ = b.Redis.Set(context.WithoutCancel(ctx), key, raw, 48*time.Hour).Err()
	return nil
}

// mergeItems adds batch to earlier, once per registration, sorted.
func mergeItems(earlier, batch []tasks.DigestItem) []tasks.DigestItem {
	seen := make(map[string]bool, len(earlier)+len(batch))
	out := make([]tasks.DigestItem, 0, len(earlier)+len(batch))
	for _, item := range append(append([]tasks.DigestItem{}, earlier...), batch...) {
		if id := item.Registration.ID(); !seen[id] {
			seen[id] = true
			out = append(out, item)
		}
	}
	tasks.SortDigestItems(out)
	return out
}
