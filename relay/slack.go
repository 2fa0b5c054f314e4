package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// Slack posts a staff message. The text is mrkdwn from a Slack template,
// in which the payload's text is already escaped.
type Slack interface {
	Post(ctx context.Context, text string) error
}

// SlackWebhook posts to an incoming-webhook URL.
type SlackWebhook struct {
	URL    string
	Client *http.Client
}

func (s SlackWebhook) Post(ctx context.Context, text string) error {
	msg := &slack.WebhookMessage{Text: text, Blocks: &slack.Blocks{BlockSet: blocks(text)}}
	err := classifySlack(slack.PostWebhookCustomHTTPContext(ctx, s.URL, s.Client, msg))
	// A network error quotes the URL, and a webhook's URL is its secret:
	// the error goes to the logs and to the archived task. slack-go keeps
	// only the text of the error, so the text is what is redacted.
	if err != nil && strings.Contains(err.Error(), s.URL) {
		err = redacted{err: err, msg: strings.ReplaceAll(err.Error(), s.URL, "(the Slack webhook URL)")}
	}
	return err
}

// redacted is err with another text; errors.As still finds its kind.
type redacted struct {
	err error
	msg string
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }

// SlackBot posts with a bot token to one channel.
type SlackBot struct {
	API     *slack.Client
	Channel string
}

// NewSlackBot uses apiURL instead of Slack's when it is not empty.
func NewSlackBot(token, channel, apiURL string, client *http.Client) SlackBot {
	opts := []slack.Option{slack.OptionHTTPClient(client)}
	if apiURL != "" {
		// slack-go appends method names to it directly.
		opts = append(opts, slack.OptionAPIURL(strings.TrimSuffix(apiURL, "/")+"/"))
	}
	return SlackBot{API: slack.New(token, opts...), Channel: channel}
}

func (s SlackBot) Post(ctx context.Context, text string) error {
	_, err := s.PostMessage(ctx, text)
	return err
}

// SlackMessages is a Slack that can change what it posted: the bot token
// mode. Incoming webhooks cannot.
type SlackMessages interface {
	Slack
	// PostMessage returns a reference for UpdateMessage.
	PostMessage(ctx context.Context, text string) (ref string, err error)
	UpdateMessage(ctx context.Context, ref, text string) error
}

func (s SlackBot) PostMessage(ctx context.Context, text string) (string, error) {
	channel, ts, err := s.API.PostMessageContext(ctx, s.Channel,
		slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks(text)...))
	if err != nil {
		return "", classifySlack(err)
	}
	// Slack answers with the channel's id, which chat.update needs even
	// when the configuration names the channel.
	return channel + " " + ts, nil
}

// errMessageGone is UpdateMessage's answer when the message was deleted.
var errMessageGone = errors.New("slack message no longer exists")

func (s SlackBot) UpdateMessage(ctx context.Context, ref, text string) error {
	channel, ts, _ := strings.Cut(ref, " ")
	_, _, _, err := s.API.UpdateMessageContext(ctx, channel, ts,
		slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks(text)...))
	var api slack.SlackErrorResponse
	if errors.As(err, &api) && (api.Err == "message_not_found" || api.Err == "cant_update_message") {
		return errMessageGone
	}
	return classifySlack(err)
}

// SlackConsole prints messages instead of posting them: the embedded
// default, until a webhook or token is configured.
type SlackConsole struct {
	mu sync.Mutex
	W  io.Writer
}

func (s *SlackConsole) Post(_ context.Context, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := fmt.Fprintf(s.W, "--- Slack (not configured; set RELAY_SLACK_WEBHOOK_URL) ---\n%s\n---\n", text)
	return err
}

// NewSlackFor makes clients as the config asks: an incoming webhook when
// there is a URL, the bot token's client for a channel, else console.
func NewSlackFor(token, apiURL string, client *http.Client, console io.Writer) SlackFor {
	printer := &SlackConsole{W: console}
	return func(webhookURL, channel string) Slack {
		switch {
		case webhookURL != "":
			return SlackWebhook{URL: webhookURL, Client: client}
		case token != "":
			return NewSlackBot(token, channel, apiURL, client)
		default:
			return printer
		}
	}
}

// sectionLimit is Slack's limit on a section's text.
const sectionLimit = 3000

// blocks is the message as one mrkdwn section. Verbatim stops Slack from
// turning bare URLs, emails, #channels and @here in the text into links or
// mentions; the links the template made on purpose still work.
func blocks(text string) []slack.Block {
	if r := []rune(text); len(r) > sectionLimit {
		text = string(r[:sectionLimit-1]) + "…"
	}
	return []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, true), nil, nil)}
}

// permanentSlackErrors will not go away by retrying.
var permanentSlackErrors = map[string]bool{
	"channel_not_found": true, "not_in_channel": true, "is_archived": true,
	"invalid_auth": true, "not_authed": true, "account_inactive": true,
	"token_revoked": true, "token_expired": true, "missing_scope": true,
	"no_permission": true, "invalid_blocks": true, "msg_too_long": true,
	"restricted_action": true, "ekm_access_denied": true,
}

func classifySlack(err error) error {
	if err == nil {
		return nil
	}
	var limited *slack.RateLimitedError
	var status slack.StatusCodeError
	var api slack.SlackErrorResponse
	switch {
	case errors.As(err, &limited):
		return rateLimited(limited.RetryAfter, err)
	case errors.As(err, &status) && status.Code == http.StatusTooManyRequests:
		// A 429 without Retry-After: Slack's window is a minute.
		return rateLimited(time.Minute, err)
	case errors.As(err, &status) && status.Code >= 500:
		return temporary(err)
	case errors.As(err, &status):
		// 400 invalid_payload, 403 action_prohibited, 404 no_service,
		// 410 channel_is_archived: the webhook or the message must change.
		return permanent(err)
	case errors.As(err, &api) && api.Err == "ratelimited":
		return rateLimited(time.Minute, err)
	case errors.As(err, &api) && permanentSlackErrors[api.Err]:
		return permanent(err)
	default:
		return temporary(err)
	}
}
