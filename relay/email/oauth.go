package email

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/exam-relay/relay/config"
)

// OAuthTokens fetches the access tokens an XOAUTH2 login presents, by the
// client-credentials grant, and keeps each until three quarters of its
// life have passed: a burst of deliveries shares one token, and no
// connection logs in with one about to expire, whatever the lifetime
// (Microsoft's last an hour or more).
//
// It is oauth2.ReuseTokenSource with two differences the pool needs: it
// can forget a token the mail server refused before its time, and each
// fetch runs under its caller's context.
type OAuthTokens struct {
	config clientcredentials.Config
	http   *http.Client

	// mu is held across a fetch, so callers that wait get its token
	// rather than fetching their own.
	mu      sync.Mutex
	token   *oauth2.Token
	renewAt time.Time // zero: the endpoint gave no lifetime; keep it
}

// NewOAuthTokens fetches tokens for the application o describes.
func NewOAuthTokens(o config.OAuth) *OAuthTokens {
	return &OAuthTokens{
		config: clientcredentials.Config{
			ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL, Scopes: o.Scopes,
			// As Microsoft's and Google's documentation send them; the
			// default would try Basic auth first, two requests per
			// refusal.
			AuthStyle: oauth2.AuthStyleInParams,
		},
		http: &http.Client{Timeout: 30 * time.Second},
	}
}

// Token is a current access token, fetched when there is none.
func (t *OAuthTokens) Token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != nil && (t.renewAt.IsZero() || time.Now().Before(t.renewAt)) {
		return t.token.AccessToken, nil
	}
	token, err := t.config.Token(context.WithValue(ctx, oauth2.HTTPClient, t.http))
	if err != nil {
		return "", t.explain(err)
	}
	t.token, t.renewAt = token, time.Time{}
	if !token.Expiry.IsZero() {
		t.renewAt = time.Now().Add(time.Until(token.Expiry) * 3 / 4)
	}
	return token.AccessToken, nil
}

// Refused forgets token, which the mail server refused, so that the next
// Token fetches another; unless another caller did so already.
func (t *OAuthTokens) Refused(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != nil && t.token.AccessToken == token {
		t.token = nil
	}
}

// explain says what a failed fetch comes to and which setting to look
// at. It quotes neither the response body, which could hold anything, nor
// the client secret.
func (t *OAuthTokens) explain(err error) error {
	var refusal *oauth2.RetrieveError
	if !errors.As(err, &refusal) {
		// Not reached, or no answer: worth retrying. The error names the
		// token URL, which holds no secret; the secret is in the body.
		return fmt.Errorf("oauth2 token: %w", err)
	}
	reason := refusal.ErrorCode
	if refusal.ErrorDescription != "" {
		reason += ": " + refusal.ErrorDescription
	}
	if reason == "" && refusal.Response != nil {
		reason = refusal.Response.Status
	}
	if secret := t.config.ClientSecret; secret != "" {
		reason = strings.ReplaceAll(reason, secret, "[redacted]")
	}
	switch refusal.ErrorCode {
	case "invalid_client", "unauthorized_client":
		return fmt.Errorf("oauth2 token: %s refused the client id %q or its client secret (%s): check RELAY_SMTP_OAUTH_CLIENT_ID (smtp.oauth.client_id) and RELAY_SMTP_OAUTH_CLIENT_SECRET (smtp.oauth.client_secret); the secret wanted is the value shown once when it was made, not its id, and it expires",
			t.config.TokenURL, t.config.ClientID, reason)
	case "invalid_scope":
		return fmt.Errorf("oauth2 token: %s refused the scopes %q (%s): check RELAY_SMTP_OAUTH_SCOPES (smtp.oauth.scopes); Microsoft 365 wants %s",
			t.config.TokenURL, strings.Join(t.config.Scopes, ","), reason, config.DefaultOAuthScope)
	}
	return fmt.Errorf("oauth2 token: %s refused (%s): check RELAY_SMTP_OAUTH_TOKEN_URL (smtp.oauth.token_url), such as https://login.microsoftonline.com/TENANT/oauth2/v2.0/token",
		t.config.TokenURL, reason)
}
