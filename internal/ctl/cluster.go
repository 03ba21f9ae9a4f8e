package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// followerSilent is how long after its last heartbeat a listed follower counts as gone: followers send one at least
// every second, and the leader counts them for synchronous replication for 10 s.
const followerSilent = 10 * time.Second

// probe is one node's answer to GET /v1/status.
type probe struct {
	url    string
	status Status
	err    error
}

// probeAll asks every URL for its status, concurrently, and returns the answers in the order of urls.
func (a *app) probeAll(ctx context.Context, urls []string) []*probe {
	out := make([]*probe, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			st, err := a.client.Status(ctx, u)
			out[i] = &probe{url: u, status: st, err: err}
		})
	}
	wg.Wait()
	return out
}

// pickLeader returns the index of the leader among probes: a ready leader first, else any node whose role is
// leader (a degraded one: fenced, or a standby that waits for the lease); -1 when none answered as a leader.
func pickLeader(probes []*probe) int {
	best := -1
	for i, p := range probes {
		if p.err != nil || p.status.Role != roleLeader {
			continue
		}
		if p.status.State == stateReady {
			return i
		}
		if best < 0 {
			best = i
		}
	}
	return best
}

// errNoLeader says that no leader was found among urls, wrapping ErrUnreachable, with the errors of the nodes that
// did not answer when causes is set (status reports those on their own).
func errNoLeader(probes []*probe, causes bool) error {
	var errs []error
	for _, p := range probes {
		if p.err != nil {
			errs = append(errs, p.err)
		}
	}
	err := fmt.Errorf("ctl: %w: no leader among --url: add the leader's URL to --url", ErrUnreachable)
	if len(errs) == len(probes) {
		err = fmt.Errorf("ctl: %w: no leader found: no node of --url answered", ErrUnreachable)
	}
	if causes && len(errs) > 0 {
		return errors.Join(append([]error{err}, errs...)...)
	}
	return err
}

// cluster is what the CLI could learn of the whole cluster from --url.
type cluster struct {
	probes    []*probe       // every --url, in order
	leader    *probe         // nil when no leader was found
	followers []FollowerInfo // the leader's list, sorted by id; nil without a leader
	// followersErr is why the follower list could not be read.
	followersErr error
	snapshots    []json.RawMessage
	snapshotsErr error
	// extra are the probes of nodes found through the API rather than --url (the leader through a follower's
	// leader_url, followers through their url in the leader's list).
	extra []*probe
}

// survey probes every --url, finds the leader (through a follower's leader_url when none of them is), and reads the
// leader's follower and snapshot lists; followers the list gives a URL for are probed too. It fails only when ctx
// ends: what could not be learned is recorded in the result.
func (a *app) survey(ctx context.Context, withSnapshots bool) (*cluster, error) {
	c := &cluster{probes: a.probeAll(ctx, a.urls)}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if i := pickLeader(c.probes); i >= 0 {
		c.leader = c.probes[i]
	} else {
		for _, p := range c.probes {
			if p.err != nil || p.status.LeaderURL == "" || c.known(p.status.LeaderURL) {
				continue
			}
			lp := a.probeAll(ctx, []string{p.status.LeaderURL})
			c.extra = append(c.extra, lp[0])
			if lp[0].err == nil && lp[0].status.Role == roleLeader {
				c.leader = lp[0]
				break
			}
		}
	}
	if c.leader == nil {
		return c, nil
	}
	c.followers, c.followersErr = a.client.Followers(ctx, c.leader.url)
	sort.Slice(c.followers, func(i, j int) bool { return c.followers[i].ID < c.followers[j].ID })
	if withSnapshots {
		c.snapshots, c.snapshotsErr = a.client.Snapshots(ctx, c.leader.url)
	}
	var urls []string
	for _, f := range c.followers {
		if f.URL != "" && c.byID(f.ID) == nil && !c.known(f.URL) {
			urls = append(urls, f.URL)
		}
	}
	c.extra = append(c.extra, a.probeAll(ctx, urls)...)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// known reports whether url was probed already.
func (c *cluster) known(url string) bool {
	for _, p := range c.all() {
		if p.url == url {
			return true
		}
	}
	return false
}

// all is every probe, --url first.
func (c *cluster) all() []*probe {
	return append(append([]*probe(nil), c.probes...), c.extra...)
}

// byID returns the probe of the node with that id that answered, or nil.
func (c *cluster) byID(id string) *probe {
	for _, p := range c.all() {
		if p.err == nil && p.status.ID == id {
			return p
		}
	}
	return nil
}

// member is one node of the cluster as the CLI sees it: its own status when it could be asked, the leader's record
// of it (followers), or only the error of its URL.
type member struct {
	probe  *probe        // nil: known only from the leader's list
	listed *FollowerInfo // the leader's record, nil for the leader and for nodes it does not list
}

// members returns the leader, then every follower the leader lists, then every other node that answered or did not
// (a --url that is not in the list: another leader, a follower not heard from yet, or an unreachable URL). A node
// appears once, matched by id.
func (c *cluster) members() []member {
	var out []member
	seen := map[*probe]bool{}
	if c.leader != nil {
		out = append(out, member{probe: c.leader})
		seen[c.leader] = true
	}
	for i := range c.followers {
		f := &c.followers[i]
		p := c.byID(f.ID)
		if p != nil {
			seen[p] = true
		}
		out = append(out, member{probe: p, listed: f})
	}
	for _, p := range c.all() {
		if !seen[p] && !duplicate(p, seen) {
			out = append(out, member{probe: p})
			seen[p] = true
		}
	}
	return out
}

// duplicate reports whether p answered with the id of a node already shown (the same node under two URLs).
func duplicate(p *probe, seen map[*probe]bool) bool {
	if p.err != nil {
		return false
	}
	for q := range seen {
		if q.err == nil && q.status.ID == p.status.ID {
			return true
		}
	}
	return false
}

// errProbes joins the errors of the nodes that did not answer their status (nil when all did). It wraps
// ErrUnreachable when one of them could not be reached.
func (c *cluster) errProbes() error {
	var errs []error
	for _, p := range c.all() {
		if p.err != nil {
			errs = append(errs, p.err)
		}
	}
	return errors.Join(errs...)
}
