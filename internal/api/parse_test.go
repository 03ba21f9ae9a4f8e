package api

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/apply"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		name    string
		escaped string
		want    string
		ok      bool
	}{
		{name: "Plain", escaped: "abc", want: "abc", ok: true},
		{name: "EncodedSlash", escaped: "a%2Fb", want: "a/b", ok: true},
		{name: "PlainSlash", escaped: "a/b/", want: "a/b/", ok: true},
		{name: "Plus", escaped: "a+b", want: "a+b", ok: true},
		{name: "Space", escaped: "a%20b", want: "a b", ok: true},
		{name: "Dots", escaped: "..", want: "..", ok: true},
		{name: "MaxLen", escaped: strings.Repeat("x", apply.MaxKeyLen), want: strings.Repeat("x", apply.MaxKeyLen),
			ok: true},
		{name: "Empty", escaped: ""},
		{name: "TooLong", escaped: strings.Repeat("x", apply.MaxKeyLen+1)},
		{name: "TooLongDecoded", escaped: strings.Repeat("%C3%A9", apply.MaxKeyLen/2+1)},
		{name: "BadEscape", escaped: "a%zzb"},
		{name: "TruncatedEscape", escaped: "a%2"},
		{name: "NUL", escaped: "a%00"},
		{name: "BadUTF8", escaped: "%C3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseKey(tc.escaped)
			if !tc.ok {
				if !errors.Is(err, apply.ErrInvalidKey) {
					t.Fatalf("err = %v, want ErrInvalidKey", err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("parseKey = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseCond(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    apply.Cond
		ok      bool
	}{
		{name: "None", ok: true},
		{name: "IfMatchQuoted", headers: []string{"If-Match", `"12"`}, want: apply.Cond{IfMatch: 12, HasIfMatch: true},
			ok: true},
		{name: "IfMatchBare", headers: []string{"If-Match", " 12 "}, want: apply.Cond{IfMatch: 12, HasIfMatch: true},
			ok: true},
		{name: "IfMatchZero", headers: []string{"If-Match", `"0"`}, want: apply.Cond{HasIfMatch: true}, ok: true},
		{name: "IfMatchMax", headers: []string{"If-Match", "18446744073709551615"},
			want: apply.Cond{IfMatch: 1<<64 - 1, HasIfMatch: true}, ok: true},
		{name: "IfNoneMatch", headers: []string{"If-None-Match", "*"}, want: apply.Cond{IfNoneMatch: true}, ok: true},
		{name: "IfMatchStar", headers: []string{"If-Match", "*"}},
		{name: "IfMatchWeak", headers: []string{"If-Match", `W/"1"`}},
		{name: "IfMatchList", headers: []string{"If-Match", `"1", "2"`}},
		{name: "IfMatchTwice", headers: []string{"If-Match", "1", "If-Match", "2"}},
		{name: "IfMatchEmpty", headers: []string{"If-Match", ""}},
		{name: "IfMatchQuotesOnly", headers: []string{"If-Match", `""`}},
		{name: "IfMatchSigned", headers: []string{"If-Match", "+1"}},
		{name: "IfMatchNegative", headers: []string{"If-Match", "-1"}},
		{name: "IfMatchOverflow", headers: []string{"If-Match", "18446744073709551616"}},
		{name: "IfMatchHalfQuoted", headers: []string{"If-Match", `"1`}},
		{name: "IfNoneMatchTag", headers: []string{"If-None-Match", `"1"`}},
		{name: "IfNoneMatchEmpty", headers: []string{"If-None-Match", ""}},
		{name: "Both", headers: []string{"If-Match", "1", "If-None-Match", "*"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for i := 0; i+1 < len(tc.headers); i += 2 {
				h.Add(tc.headers[i], tc.headers[i+1])
			}
			got, err := parseCond(h)
			if !tc.ok {
				if _, isReq := errors.AsType[*requestError](err); !isReq {
					t.Fatalf("err = %v, want a request error", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseCond = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseReadOptions(t *testing.T) {
	const def, maxTimeout = 5 * time.Second, time.Minute
	tests := []struct {
		name  string
		query string
		want  readOptions
		ok    bool
	}{
		{name: "Default", want: readOptions{timeout: def}, ok: true},
		{name: "Eventual", query: "consistency=eventual", want: readOptions{timeout: def}, ok: true},
		{name: "Strong", query: "consistency=strong", want: readOptions{strong: true, timeout: def}, ok: true},
		{name: "MinSeq", query: "min_seq=42", want: readOptions{minSeq: 42, timeout: def}, ok: true},
		{name: "Timeout", query: "timeout=250ms", want: readOptions{timeout: 250 * time.Millisecond}, ok: true},
		{name: "MaxTimeout", query: "timeout=1m", want: readOptions{timeout: time.Minute}, ok: true},
		{name: "Unknown", query: "foo=bar", want: readOptions{timeout: def}, ok: true},
		{name: "BadConsistency", query: "consistency=STRONG"},
		{name: "EmptyConsistency", query: "consistency="},
		{name: "BadMinSeq", query: "min_seq=x"},
		{name: "NegativeMinSeq", query: "min_seq=-3"},
		{name: "EmptyMinSeq", query: "min_seq="},
		{name: "TimeoutNoUnit", query: "timeout=5"},
		{name: "TimeoutZero", query: "timeout=0s"},
		{name: "TimeoutNegative", query: "timeout=-1s"},
		{name: "TimeoutTooLong", query: "timeout=61s"},
		{name: "Repeated", query: "min_seq=1&min_seq=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseReadOptions(q, def, maxTimeout)
			if !tc.ok {
				if _, isReq := errors.AsType[*requestError](err); !isReq {
					t.Fatalf("err = %v, want a request error", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseReadOptions = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseListOptions(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		prefix string
		after  string
		limit  int
		values bool
		ok     bool
	}{
		{name: "Default", limit: DefaultListLimit, ok: true},
		{name: "All", query: "prefix=a%2F&after=a%2Fb&limit=5&values=true", prefix: "a/", after: "a/b", limit: 5,
			values: true, ok: true},
		{name: "MaxLimit", query: "limit=10000", limit: MaxListLimit, ok: true},
		{name: "EmptyPrefix", query: "prefix=", limit: DefaultListLimit, ok: true},
		{name: "LimitZero", query: "limit=0"},
		{name: "LimitNegative", query: "limit=-1"},
		{name: "LimitTooLarge", query: "limit=10001"},
		{name: "LimitEmpty", query: "limit="},
		{name: "ValuesOne", query: "values=1"},
		{name: "ValuesEmpty", query: "values="},
		{name: "LongPrefix", query: "prefix=" + strings.Repeat("p", apply.MaxKeyLen+1)},
		{name: "RepeatedAfter", query: "after=a&after=b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseListOptions(q)
			if !tc.ok {
				if _, isReq := errors.AsType[*requestError](err); !isReq {
					t.Fatalf("err = %v, want a request error", err)
				}
				return
			}
			if err != nil || string(got.prefix) != tc.prefix || string(got.after) != tc.after || got.limit != tc.limit ||
				got.values != tc.values {
				t.Fatalf("parseListOptions = %+v, %v", got, err)
			}
		})
	}
}
