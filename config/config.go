// Package config holds the relay's settings: their defaults, loading from a
// YAML file and then from RELAY_* environment variables, and validation with
// messages a person can act on.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/templates"
)

// Config is everything the relay can be told. The zero value is not useful:
// start from Default or Load.
type Config struct {
	HTTPAddr string    `yaml:"http_addr"`
	TLS      ServerTLS `yaml:"tls"`
	// RedisURL empty means the embedded in-memory Redis (relay run only).
	RedisURL string  `yaml:"redis_url"`
	Redis    Redis   `yaml:"redis"`
	Webhook  Webhook `yaml:"webhook"`
	SMTP     SMTP    `yaml:"smtp"`
	Email    Email   `yaml:"email"`
	Slack    Slack   `yaml:"slack"`
	Teams    Teams   `yaml:"teams"`
	// TimeZone is the IANA zone dates are shown in when nothing more
	// specific applies.
	TimeZone string `yaml:"timezone"`
	// TimeZoneAttribute names the custom attribute that holds a student's
	// own zone, which wins over the route's when it is a valid IANA name.
	TimeZoneAttribute string `yaml:"timezone_attribute"`
	// Language writes dates and picks the default templates.
	Language     string `yaml:"language"`
	TemplatesDir string `yaml:"templates_dir"`
	// Routes send some registrations elsewhere; see Route.
	Routes []Route `yaml:"routes"`
	// Retention is the least time a delivered registration is remembered,
	// and so a repeat of it recognised and sends nothing: the student's
	// ledger lasts until the exam is over and a week more, and at least
	// this.
	Retention Duration  `yaml:"retention"`
	History   History   `yaml:"history"`
	Admin     Admin     `yaml:"admin"`
	Spool     Spool     `yaml:"spool"`
	Reminders Reminders `yaml:"reminders"`
	Worker    Worker    `yaml:"worker"`
	LogLevel  string    `yaml:"log_level"`
	// DebugAddr serves net/http/pprof, for profiling a running relay.
	DebugAddr string `yaml:"debug_addr"`
}

// Redis is how the relay uses the Redis that RedisURL names.
type Redis struct {
	// MinReplicas is how many replicas must hold a registration before
	// the receiver relies on Redis alone for it; 0 does not wait.
	MinReplicas int `yaml:"min_replicas"`
}

type Webhook struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Secrets, when set, turn on Standard Webhooks signature checks:
	// "whsec_" + base64 each; several at once while rotating.
	Secrets []string `yaml:"secrets"`
}

// SigningKeys decodes Secrets.
func (w Webhook) SigningKeys() ([][]byte, error) {
	var keys [][]byte
	for i, s := range w.Secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || len(key) == 0 {
			return nil, fmt.Errorf("RELAY_WEBHOOK_SECRETS (webhook.secrets): secret #%d is not whsec_ followed by base64", i+1)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// ServerTLS is the certificate the receiver serves HTTPS with, when it runs
// without a TLS-terminating proxy.
type ServerTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

type SMTP struct {
	// URL empty means emails are written as .eml files to OutboxDir.
	URL       string `yaml:"url"`
	PoolSize  int    `yaml:"pool_size"`
	OutboxDir string `yaml:"outbox_dir"`
	// Rate is what the provider takes, shared by every worker; zero: no
	// limit of the relay's own.
	Rate Rate `yaml:"rate"`
	// DailyLimit is emails per rolling 24 hours; 0: none.
	DailyLimit int `yaml:"daily_limit"`
	// OAuth gives the tokens a URL with auth=xoauth2 logs in with.
	OAuth OAuth `yaml:"oauth"`
}

type Email struct {
	From    string `yaml:"from"`
	ReplyTo string `yaml:"reply_to"`
	DKIM    DKIM   `yaml:"dkim"`
}

// DKIM signs every email for its From domain with a key whose public half
// the school publishes at SELECTOR._domainkey.DOMAIN.
type DKIM struct {
	KeyFile  string `yaml:"key_file"`
	Selector string `yaml:"selector"`
}

type Slack struct {
	WebhookURL string `yaml:"webhook_url"`
	Token      string `yaml:"token"`
	Channel    string `yaml:"channel"`
	// APIURL replaces https://slack.com/api/ for the bot token mode.
	APIURL string `yaml:"api_url"`
	// Mode is digest (one message per exam per burst), each (one per
	// registration) or off.
	Mode   string `yaml:"mode"`
	Digest Digest `yaml:"digest"`
}

// Teams is a Microsoft Teams workflow staff are told in, beside or instead
// of Slack. Digests follow slack.digest's window.
type Teams struct {
	// WebhookURL is the workflow's "When a Teams webhook request is
	// received" URL; it carries a signature, so it is a secret.
	WebhookURL string `yaml:"webhook_url"`
	// Mode is digest, each or off, as for Slack.
	Mode string `yaml:"mode"`
}

// Digest is how registrations for one exam are gathered into one message.
type Digest struct {
	// Grace is how long a digest waits for one more registration.
	Grace Duration `yaml:"grace"`
	// MaxDelay bounds the wait from the first registration.
	MaxDelay Duration `yaml:"max_delay"`
	// MaxSize posts a digest once it holds this many registrations.
	MaxSize int `yaml:"max_size"`
	// List is how many students a digest names before "and N more".
	List int `yaml:"list"`
}

// Reminders are the emails sent before an exam opens or closes; none by
// default.
type Reminders struct {
	BeforeOpen  Durations `yaml:"before_open"`
	BeforeClose Durations `yaml:"before_close"`
}

// History is the record of every delivery, for `relay history` and the
// admin page.
type History struct {
	// Retention is how long an entry is kept.
	Retention Duration `yaml:"retention"`
}

// Admin is the exams office's page in the relay's HTTP server, with its
// own Basic auth; no password: no page.
type Admin struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Spool is where the receiver keeps registrations while Redis is away.
type Spool struct {
	Dir string `yaml:"dir"`
	// Max bounds the registrations held; past it the receiver answers 503.
	Max int `yaml:"max"`
}

type Worker struct {
	Concurrency int `yaml:"concurrency"`
	MaxRetry    int `yaml:"max_retry"`
	// RetrySchedule is the wait before each retry; the last one repeats.
	RetrySchedule   Durations `yaml:"retry_schedule"`
	ShutdownTimeout Duration  `yaml:"shutdown_timeout"`
}

// Default returns the settings used for anything not configured.
func Default() Config {
	return Config{
		HTTPAddr: ":8080",
		Webhook:  Webhook{Username: "synap"},
		SMTP:     SMTP{PoolSize: 4, OutboxDir: "outbox", OAuth: OAuth{Scopes: Scopes{DefaultOAuthScope}}},
		Email:    Email{From: "Exam Relay <exam-relay@localhost>"},
		Teams:    Teams{Mode: string(relay.ModeDigest)},
		Slack: Slack{Mode: string(relay.ModeDigest), Digest: Digest{
			// A burst arrives with gaps of milliseconds; 5 s ends it and
			// keeps a lone registration's alert within about 10 s.
			Grace: Duration(5 * time.Second), MaxDelay: Duration(time.Minute), MaxSize: 500, List: 25,
		}},
		TimeZone:          "UTC",
		TimeZoneAttribute: "timezone",
		Language:          "en",
		Retention:         Duration(7 * 24 * time.Hour),
		History:           History{Retention: Duration(180 * 24 * time.Hour)},
		Admin:             Admin{Username: "admin"},
		Spool:             Spool{Dir: "spool", Max: 100_000},
		Worker: Worker{
			Concurrency: 10,
			MaxRetry:    20,
			RetrySchedule: Durations{
				Duration(5 * time.Second), Duration(10 * time.Second), Duration(30 * time.Second),
				Duration(time.Minute), Duration(2 * time.Minute), Duration(5 * time.Minute),
				Duration(10 * time.Minute), Duration(20 * time.Minute), Duration(30 * time.Minute),
				Duration(time.Hour), Duration(2 * time.Hour), Duration(4 * time.Hour),
			},
			ShutdownTimeout: Duration(10 * time.Second),
		},
		LogLevel: "info",
	}
}

// Load reads the YAML file at path (when path is not empty), then applies
// the RELAY_* environment variables on top, then validates the result.
func Load(path string, getenv func(string) string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w", path, withValidKeys(err))
		}
		for i, line := range routeLines(b) {
			if i < len(cfg.Routes) {
				cfg.Routes[i].line = line
			}
		}
	}
	for _, s := range Settings {
		v := getenv(s.Env)
		if v == "" {
			continue
		}
		if err := s.set(&cfg, v); err != nil {
			return cfg, fmt.Errorf("%s=%q: %w", s.Env, redactIf(s.Secret, v), err)
		}
	}
	if err := cfg.Validate(); err != nil {
		if path != "" {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		return cfg, err
	}
	return cfg, nil
}

// Validate reports the first setting that cannot work, naming it.
func (c Config) Validate() error {
	var errs []error
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" {
		errs = append(errs, fmt.Errorf("RELAY_TIMEZONE (timezone): %q is not an IANA time zone such as UTC or Europe/London", c.TimeZone))
	}
	if _, err := templates.ParseLanguage(c.Language); err != nil {
		errs = append(errs, fmt.Errorf("RELAY_LANGUAGE (language): %w", err))
	}
	if c.TemplatesDir != "" {
		if err := isDir(c.TemplatesDir); err != nil {
			errs = append(errs, fmt.Errorf("RELAY_TEMPLATES_DIR (templates_dir): %w", err))
		}
	}
	errs = append(errs, c.validateRoutes()...)
	if _, err := c.Webhook.SigningKeys(); err != nil {
		errs = append(errs, err)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		errs = append(errs, errors.New("RELAY_TLS_CERT and RELAY_TLS_KEY (tls.cert, tls.key): set both or neither"))
	}
	if c.Webhook.Password != "" && c.Webhook.Username == "" {
		errs = append(errs, errors.New("RELAY_WEBHOOK_USERNAME (webhook.username) is required when a password is set"))
	}
	var smtpServer SMTPServer
	if c.SMTP.URL != "" {
		var err error
		if smtpServer, err = ParseSMTPURL(c.SMTP.URL); err != nil {
			errs = append(errs, fmt.Errorf("RELAY_SMTP_URL (smtp.url): %w", err))
		}
	}
	if c.SMTP.DailyLimit < 0 {
		errs = append(errs, fmt.Errorf("RELAY_SMTP_DAILY_LIMIT (smtp.daily_limit): %d, want 0 (none) or more", c.SMTP.DailyLimit))
	}
	if d := c.Email.DKIM; d.KeyFile != "" || d.Selector != "" {
		if d.KeyFile == "" || d.Selector == "" {
			errs = append(errs, errors.New("RELAY_DKIM_KEY_FILE and RELAY_DKIM_SELECTOR (email.dkim.key_file, email.dkim.selector): set both, such as /etc/relay/dkim.pem and exams2026"))
		} else if _, err := os.Stat(d.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("RELAY_DKIM_KEY_FILE (email.dkim.key_file): %q: no such file", d.KeyFile))
		}
	}
	switch {
	case smtpServer.Auth == AuthXOAUTH2:
		errs = append(errs, c.SMTP.OAuth.validate()...)
	case c.SMTP.OAuth.set():
		errs = append(errs, fmt.Errorf("RELAY_SMTP_OAUTH_* (smtp.oauth) are set but RELAY_SMTP_URL (smtp.url) does not log in with OAuth2: add auth=xoauth2 to it, as in %s, or remove them", xoauth2Example))
	}
	if c.SMTP.PoolSize < 1 {
		errs = append(errs, fmt.Errorf("RELAY_SMTP_POOL_SIZE (smtp.pool_size): %d, want 1 or more", c.SMTP.PoolSize))
	}
	if _, err := mailAddress(c.Email.From); err != nil {
		errs = append(errs, fmt.Errorf("RELAY_EMAIL_FROM (email.from): %w", err))
	}
	if c.Email.ReplyTo != "" {
		if _, err := mailAddress(c.Email.ReplyTo); err != nil {
			errs = append(errs, fmt.Errorf("RELAY_EMAIL_REPLY_TO (email.reply_to): %w", err))
		}
	}
	if c.Slack.WebhookURL != "" && c.Slack.Token != "" {
		errs = append(errs, errors.New("RELAY_SLACK_WEBHOOK_URL and RELAY_SLACK_TOKEN are both set: choose one"))
	}
	if c.Slack.WebhookURL != "" {
		if _, err := relay.ParseWebURL(c.Slack.WebhookURL); err != nil {
			errs = append(errs, fmt.Errorf("RELAY_SLACK_WEBHOOK_URL (slack.webhook_url): %w", err))
		}
	}
	if c.Slack.Token != "" && c.Slack.Channel == "" {
		errs = append(errs, errors.New("RELAY_SLACK_CHANNEL (slack.channel) is required with RELAY_SLACK_TOKEN"))
	}
	switch relay.StaffMode(c.Slack.Mode) {
	case relay.ModeDigest, relay.ModeEach, relay.ModeOff:
	default:
		errs = append(errs, fmt.Errorf("RELAY_SLACK_MODE (slack.mode): %q, want digest, each or off", c.Slack.Mode))
	}
	// asynq panics below a one-second grace period.
	if d := c.Slack.Digest; d.Grace < Duration(time.Second) || d.MaxDelay < d.Grace || d.MaxSize < 1 || d.List < 0 {
		errs = append(errs, fmt.Errorf("RELAY_DIGEST_* (slack.digest): grace %s (at least 1s), max delay %s (at least the grace), max size %d (1 or more), list %d (0 or more)", d.Grace, d.MaxDelay, d.MaxSize, d.List))
	}
	if c.Teams.WebhookURL != "" {
		if _, err := relay.ParseWebURL(c.Teams.WebhookURL); err != nil {
			errs = append(errs, fmt.Errorf("RELAY_TEAMS_WEBHOOK_URL (teams.webhook_url): %w", err))
		}
	}
	switch relay.StaffMode(c.Teams.Mode) {
	case relay.ModeDigest, relay.ModeEach, relay.ModeOff:
	default:
		errs = append(errs, fmt.Errorf("RELAY_TEAMS_MODE (teams.mode): %q, want digest, each or off", c.Teams.Mode))
	}
	if c.Slack.APIURL != "" {
		if _, err := relay.ParseWebURL(c.Slack.APIURL); err != nil {
			errs = append(errs, fmt.Errorf("RELAY_SLACK_API_URL (slack.api_url): %w", err))
		}
	}
	if c.RedisURL != "" {
		if _, err := ParseRedisURL(c.RedisURL); err != nil {
			errs = append(errs, fmt.Errorf("RELAY_REDIS_URL (redis_url): %w", err))
		}
	}
	if c.History.Retention < Duration(time.Hour) {
		errs = append(errs, fmt.Errorf("RELAY_HISTORY_RETENTION (history.retention): %s, want at least 1h, such as 180d", c.History.Retention))
	}
	if c.Admin.Password != "" && c.Admin.Username == "" {
		errs = append(errs, errors.New("RELAY_ADMIN_USERNAME (admin.username) is required when an admin password is set"))
	}
	if c.Admin.Password != "" && c.Admin.Password == c.Webhook.Password {
		errs = append(errs, errors.New("RELAY_ADMIN_PASSWORD (admin.password) is the webhook's password: give the admin page its own"))
	}
	switch {
	case c.Redis.MinReplicas < 0:
		errs = append(errs, fmt.Errorf("RELAY_REDIS_MIN_REPLICAS (redis.min_replicas): %d, want 0 (don't wait) or more, such as 1", c.Redis.MinReplicas))
	case c.Redis.MinReplicas > 0 && c.RedisURL == "":
		errs = append(errs, errors.New("RELAY_REDIS_MIN_REPLICAS (redis.min_replicas) needs RELAY_REDIS_URL: the in-memory Redis has no replicas"))
	}
	if c.Retention < Duration(time.Minute) {
		errs = append(errs, fmt.Errorf("RELAY_RETENTION (retention): %s, want at least 1m", c.Retention))
	}
	if c.Worker.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("RELAY_WORKER_CONCURRENCY (worker.concurrency): %d, want 1 or more", c.Worker.Concurrency))
	}
	if c.Spool.Dir == "" || c.Spool.Max < 1 {
		errs = append(errs, fmt.Errorf("RELAY_SPOOL_DIR / RELAY_SPOOL_MAX (spool): want a folder and a limit of 1 or more"))
	}
	for _, d := range append(append(Durations{}, c.Reminders.BeforeOpen...), c.Reminders.BeforeClose...) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("RELAY_REMINDER_BEFORE_OPEN / _CLOSE (reminders): %s, want positive durations such as 24h,1h", d))
			break
		}
	}
	if len(c.Worker.RetrySchedule) == 0 {
		errs = append(errs, errors.New("RELAY_RETRY_SCHEDULE (worker.retry_schedule): want at least one duration, such as 5s,30s,5m,1h"))
	}
	for _, d := range c.Worker.RetrySchedule {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("RELAY_RETRY_SCHEDULE (worker.retry_schedule): %s, want positive durations", d))
			break
		}
	}
	if c.Worker.MaxRetry < 0 {
		errs = append(errs, fmt.Errorf("RELAY_MAX_RETRY (worker.max_retry): %d, want 0 or more", c.Worker.MaxRetry))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("RELAY_LOG_LEVEL (log_level): %q, want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// Location is the configured default time zone. Validate has checked it.
func (c Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

func isDir(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%q: no such folder", path)
	}
	if !info.IsDir() {
		return fmt.Errorf("%q is a file; want the folder of .tmpl files", path)
	}
	return nil
}

// yamlTypes are the types a config file is read into, by the name the
// YAML decoder's errors give them.
var yamlTypes = map[string]any{
	"Config": Config{}, "ServerTLS": ServerTLS{}, "Redis": Redis{}, "Webhook": Webhook{}, "SMTP": SMTP{}, "OAuth": OAuth{}, "Email": Email{}, "DKIM": DKIM{},
	"Slack": Slack{}, "Teams": Teams{}, "Digest": Digest{}, "Reminders": Reminders{}, "Spool": Spool{}, "Worker": Worker{},
	"Route": Route{}, "Match": Match{}, "RouteSlack": RouteSlack{}, "RouteTeams": RouteTeams{}, "History": History{}, "Admin": Admin{},
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type config\.(\w+)`)

// withValidKeys adds to "field X not found" the keys that would be valid
// there, which is what the person editing the file needs next.
func withValidKeys(err error) error {
	msg := unknownField.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := unknownField.FindStringSubmatch(m)
		v, ok := yamlTypes[sub[2]]
		if !ok {
			return m
		}
		var keys []string
		t := reflect.TypeOf(v)
		for i := range t.NumField() {
			if key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); key != "" && key != "-" {
				keys = append(keys, key)
			}
		}
		return fmt.Sprintf("unknown key %q (valid here: %s)", sub[1], strings.Join(keys, ", "))
	})
	return errors.New(msg)
}

// Duration reads "90s", "168h" or "7d" from YAML and the environment.
type Duration time.Duration

// String is the shortest form parseDuration reads back: 7d, 4h, 1m, 90s.
func (d Duration) String() string {
	td := time.Duration(d)
	if td > 0 && td%(24*time.Hour) == 0 {
		return strconv.Itoa(int(td/(24*time.Hour))) + "d"
	}
	s := td.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Durations reads "5s,30s,5m" from the environment and a list or that
// string from YAML.
type Durations []Duration

func (ds Durations) String() string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

func (ds *Durations) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		v, err := parseDurations(n.Value)
		*ds = v
		return err
	}
	var list []Duration
	if err := n.Decode(&list); err != nil {
		return err
	}
	*ds = list
	return nil
}

// Std is the list as time.Durations.
func (ds Durations) Std() []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = time.Duration(d)
	}
	return out
}

func parseDurations(s string) (Durations, error) {
	var out Durations
	for _, part := range strings.Split(s, ",") {
		d, err := parseDuration(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, Duration(d))
	}
	return out, nil
}

// parseDuration is time.ParseDuration plus whole days, which is how people
// think of retention.
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a duration such as 7d, 12h or 90s", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 7d, 12h or 90s", s)
	}
	return d, nil
}
