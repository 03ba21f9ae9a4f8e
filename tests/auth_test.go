//go:build e2e

package tests

import (
	"net/http"
	"testing"
)

// TestAuth_BearerToken: with --auth-token every /v1/ request needs "Authorization: Bearer <token>" (401 otherwise),
// on the leader and on a follower; /healthz and /readyz stay open for probes.
func TestAuth_BearerToken(t *testing.T) {
	t.Parallel()
	const token = "s3cr3t-t0ken"
	c := newCluster(t, clusterOpts{token: token})
	ld := c.startLeader()
	f := c.startFollower("f1")
	ld.api().put(t, "auth/key", []byte("v"))
	f.api().waitReady(t)

	for _, n := range []*proc{ld, f} {
		t.Run(n.name, func(t *testing.T) {
			tests := []struct {
				name   string
				method string
				path   string
				auth   string // Authorization header; "" = none
				want   int
			}{
				{"StatusNoToken", http.MethodGet, "/v1/status", "", http.StatusUnauthorized},
				{"StatusWrongToken", http.MethodGet, "/v1/status", "Bearer wrong", http.StatusUnauthorized},
				{"StatusNotBearer", http.MethodGet, "/v1/status", "Basic " + token, http.StatusUnauthorized},
				{"StatusToken", http.MethodGet, "/v1/status", "Bearer " + token, http.StatusOK},
				{"GetNoToken", http.MethodGet, kvPath("auth/key"), "", http.StatusUnauthorized},
				{"DigestNoToken", http.MethodGet, "/v1/digest", "", http.StatusUnauthorized},
				{"PutNoToken", http.MethodPut, kvPath("auth/other"), "", http.StatusUnauthorized},
				{"Healthz", http.MethodGet, "/healthz", "", http.StatusOK},
				{"Readyz", http.MethodGet, "/readyz", "", http.StatusOK},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					cl := &client{base: n.URL(), hc: c.hc}
					hdr := http.Header{}
					if tt.auth != "" {
						hdr.Set("Authorization", tt.auth)
					}
					r := cl.must(t, tt.method, tt.path, []byte("x"), hdr, tt.want)
					if tt.want == http.StatusUnauthorized {
						if e := decode[errorDoc](t, r); e.Code == "" || e.Error == "" {
							t.Fatalf("401 without a JSON error body: %s", r)
						}
					}
				})
			}
		})
	}
	// The follower's answer with the token is a real read.
	r := f.api().must(t, http.MethodGet, kvPath("auth/key")+"?consistency=strong", nil, nil, http.StatusOK)
	if string(r.Body) != "v" {
		t.Fatalf("authorized follower read: %q", r.Body)
	}
}
