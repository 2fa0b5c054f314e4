package relaytest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// OAuth stands in for an identity service's token endpoint, such as
// Microsoft Entra ID's: it grants access tokens by the client-credentials
// grant to one client id and secret, and tells an SMTP sink started with
// RequireXOAUTH2(o.Check) which tokens are good.
//
// Like Entra ID it wants a scope, takes the client's credentials in the
// form or in Basic auth, and answers a wrong id or secret with 401
// invalid_client.
type OAuth struct {
	ClientID     string
	ClientSecret string
	// Lifetime is how long its tokens are good for, its expires_in.
	Lifetime time.Duration

	server *httptest.Server

	mu       sync.Mutex
	requests int
	granted  int
	scopes   string
	expiry   map[string]time.Time // by access token
}

// StartOAuth starts a token endpoint that grants tokens good for lifetime
// (whole seconds) to clientID with clientSecret. It is closed when t ends.
func StartOAuth(t testing.TB, clientID, clientSecret string, lifetime time.Duration) *OAuth {
	t.Helper()
	if lifetime < time.Second || lifetime%time.Second != 0 {
		t.Fatalf("relaytest: token lifetime %v: expires_in is whole seconds", lifetime)
	}
	o := &OAuth{ClientID: clientID, ClientSecret: clientSecret, Lifetime: lifetime, expiry: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tenant/oauth2/v2.0/token", o.token)
	o.server = httptest.NewServer(mux)
	t.Cleanup(o.server.Close)
	return o
}

// TokenURL is the endpoint, shaped like Entra ID's.
func (o *OAuth) TokenURL() string { return o.server.URL + "/tenant/oauth2/v2.0/token" }

// Requests is how many token requests came, granted or refused.
func (o *OAuth) Requests() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests
}

// Granted is how many tokens it granted.
func (o *OAuth) Granted() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.granted
}

// Scopes is the scope parameter of the last request.
func (o *OAuth) Scopes() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.scopes
}

// Revoke makes every token granted so far fail Check, though none has
// expired: a client holding one learns it only when a login is refused.
func (o *OAuth) Revoke() {
	o.mu.Lock()
	defer o.mu.Unlock()
	clear(o.expiry)
}

// Check says whether token is one this endpoint granted, not expired and
// not revoked. A client-credentials token is the application's, not a
// user's, so user is not checked: the mail service decides which
// mailboxes the application may send as.
func (o *OAuth) Check(user, token string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	expiry, ok := o.expiry[token]
	switch {
	case !ok:
		return errors.New("token not granted here, or revoked")
	case !time.Now().Before(expiry):
		return errors.New("token expired")
	}
	return nil
}

func (o *OAuth) token(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests++
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	o.scopes = r.PostForm.Get("scope")
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials")
	case id != o.ClientID || secret != o.ClientSecret:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
	case o.scopes == "":
		oauthError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid.")
	default:
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		token := "tok-" + hex.EncodeToString(b)
		o.expiry[token] = time.Now().Add(o.Lifetime)
		o.granted++
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"token_type": "Bearer", "expires_in": int(o.Lifetime / time.Second), "access_token": token,
		})
	}
}

func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
