// Package slack is the relay's room for Slack: posting staff messages to an
// incoming webhook or, with a bot token, to a channel (where a digest can
// later be updated), and saying what Slack's errors come to.
package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/exam-relay/relay/relay"
)

// Webhook posts to an incoming-webhook URL. The text is mrkdwn from a
// Slack template, in which the payload's text is already escaped.
type Webhook struct {
	URL    string
	Client *http.Client
}

func (s Webhook) Post(ctx context.Context, text string) error {
	msg := &slackapi.WebhookMessage{Text: text, Blocks: &slackapi.Blocks{BlockSet: blocks(text)}}
	err := classify(slackapi.PostWebhookCustomHTTPContext(ctx, s.URL, s.Client, msg))
	// A network error quotes the URL, which is the webhook's secret.
	// slack-go keeps only the text of the error, so the text is redacted.
	return relay.Redact(err, s.URL, "(the Slack webhook URL)")
}

// Bot posts with a bot token to one channel.
type Bot struct {
	API     *slackapi.Client
	Channel string
}

// NewBot uses apiURL instead of Slack's when it is not empty.
func NewBot(token, channel, apiURL string, client *http.Client) Bot {
	opts := []slackapi.Option{slackapi.OptionHTTPClient(client)}
	if apiURL != "" {
		// slack-go appends method names to it directly.
		opts = append(opts, slackapi.OptionAPIURL(strings.TrimSuffix(apiURL, "/")+"/"))
	}
	return Bot{API: slackapi.New(token, opts...), Channel: channel}
}

func (s Bot) Post(ctx context.Context, text string) error {
	_, err := s.PostMessage(ctx, text)
	return err
}

// Messages is a Slack destination that can change what it posted: the bot
// token mode. Incoming webhooks cannot.
type Messages interface {
	relay.Poster
	// PostMessage returns a reference for UpdateMessage.
	PostMessage(ctx context.Context, text string) (ref string, err error)
	UpdateMessage(ctx context.Context, ref, text string) error
}

func (s Bot) PostMessage(ctx context.Context, text string) (string, error) {
	channel, ts, err := s.API.PostMessageContext(ctx, s.Channel,
		slackapi.MsgOptionText(text, false), slackapi.MsgOptionBlocks(blocks(text)...))
	if err != nil {
		return "", classify(err)
	}
	// Slack answers with the channel's id, which chat.update needs even
	// when the configuration names the channel.
	return channel + " " + ts, nil
}

// ErrMessageGone is UpdateMessage's answer when the message was deleted.
var ErrMessageGone = errors.New("slack message no longer exists")

func (s Bot) UpdateMessage(ctx context.Context, ref, text string) error {
	channel, ts, _ := strings.Cut(ref, " ")
	_, _, _, err := s.API.UpdateMessageContext(ctx, channel, ts,
		slackapi.MsgOptionText(text, false), slackapi.MsgOptionBlocks(blocks(text)...))
	var api slackapi.SlackErrorResponse
	if errors.As(err, &api) && (api.Err == "message_not_found" || api.Err == "cant_update_message") {
		return ErrMessageGone
	}
	return classify(err)
}

// Console prints messages instead of posting them: the embedded default,
// until a webhook or token is configured.
type Console struct {
	mu sync.Mutex
	W  io.Writer
}

func (s *Console) Post(_ context.Context, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := fmt.Fprintf(s.W, "--- Slack (not configured; set RELAY_SLACK_WEBHOOK_URL) ---\n%s\n---\n", text)
	return err
}

// Posters makes the poster for a destination as the config names it.
type Posters func(webhookURL, channel string) relay.Poster

// NewPosters makes posters as the config asks: an incoming webhook when
// there is a URL, the bot token's client for a channel, else the console.
func NewPosters(token, apiURL string, client *http.Client, console io.Writer) Posters {
	printer := &Console{W: console}
	return func(webhookURL, channel string) relay.Poster {
		switch {
		case webhookURL != "":
			return Webhook{URL: webhookURL, Client: client}
		case token != "":
			return NewBot(token, channel, apiURL, client)
		default:
			return printer
		}
	}
}

// DestinationName names a destination without its secrets: for an
// incoming webhook the URL is the secret.
func DestinationName(webhookURL, channel string) string {
	if webhookURL == "" && channel == "" {
		return "console"
	}
	return "slack-" + relay.Hash(webhookURL, channel)[:12]
}

// sectionLimit is Slack's limit on a section's text.
const sectionLimit = 3000

// blocks is the message as one mrkdwn section. Verbatim stops Slack from
// turning bare URLs, emails, #channels and @here in the text into links or
// mentions; the links the template made on purpose still work.
func blocks(text string) []slackapi.Block {
	if r := []rune(text); len(r) > sectionLimit {
		text = string(r[:sectionLimit-1]) + "…"
	}
	return []slackapi.Block{slackapi.NewSectionBlock(slackapi.NewTextBlockObject(slackapi.MarkdownType, text, false, true), nil, nil)}
}

// permanentSlackErrors will not go away by retrying.
var permanentSlackErrors = map[string]bool{
	"channel_not_found": true, "not_in_channel": true, "is_archived": true,
	"invalid_auth": true, "not_authed": true, "account_inactive": true,
	"token_revoked": true, "token_expired": true, "missing_scope": true,
	"no_permission": true, "invalid_blocks": true, "msg_too_long": true,
	"restricted_action": true, "ekm_access_denied": true,
}

func classify(err error) error {
	if err == nil {
		return nil
	}
	var limited *slackapi.RateLimitedError
	var status slackapi.StatusCodeError
	var api slackapi.SlackErrorResponse
	switch {
	case errors.As(err, &limited):
		return relay.Limited(limited.RetryAfter, err)
	case errors.As(err, &status) && status.Code == http.StatusTooManyRequests:
		// A 429 without Retry-After: Slack's window is a minute.
		return relay.Limited(time.Minute, err)
	case errors.As(err, &status) && status.Code >= 500:
		return relay.Temporary(err)
	case errors.As(err, &status):
		// 400 invalid_payload, 403 action_prohibited, 404 no_service,
		// 410 channel_is_archived: the webhook or the message must change.
		return relay.Permanent(err)
	case errors.As(err, &api) && api.Err == "ratelimited":
		return relay.Limited(time.Minute, err)
	case errors.As(err, &api) && permanentSlackErrors[api.Err]:
		return relay.Permanent(err)
	default:
		return relay.Temporary(err)
	}
}
