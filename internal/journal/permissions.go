package journal

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Permissions are the subjects a NATS user may publish to and subscribe to: allow lists, everything else is denied.
// LeaderPermissions and FollowerPermissions are the two roles' sets; the embedded server gives them to its users
// (EmbeddedConfig.Users), and an operator of an external NATS copies them into the server's configuration
// (docs/deployment.md). They list every subject the journal uses, through nats.go's jetstream package: a permission
// missing shows as a "nats async error" (permissions violation) in the node's log and a request that times out.
type Permissions struct {
	// Publish lists the subjects the user may publish to (JetStream API requests are publishes too).
	Publish []string
	// Subscribe lists the subjects the user may subscribe to. Replies to requests, JetStream acknowledgements and
	// the messages of a consumer arrive on the connection's _INBOX.> subjects.
	Subscribe []string
}

// inboxSubjects are the subjects replies arrive on: nats.go's default inbox prefix.
const inboxSubjects = "_INBOX.>"

// jsAPI is the prefix of JetStream API request subjects.
const jsAPI = "$JS.API."

// kvStream is the name of the stream that holds KV bucket bucket.
func kvStream(bucket string) string { return "KV_" + bucket }

// consumerSubjects are the JetStream API subjects of reading stream with ordered consumers (their names are one
// token): create one, pull from it, look it up, delete it when the subscription stops or the library resets it.
func consumerSubjects(stream string) []string {
	return []string{
		jsAPI + "CONSUMER.CREATE." + stream + ".*",
		jsAPI + "CONSUMER.MSG.NEXT." + stream + ".*",
		jsAPI + "CONSUMER.INFO." + stream + ".*",
		jsAPI + "CONSUMER.DELETE." + stream + ".*",
	}
}

// LeaderPermissions is what the leader's NATS user needs for the log stream named stream: publish the log's entries;
// create, check, update (its duplicate window) and purge (compaction) the log stream, and read it (recovery and
// resynchronisation replay it with ordered consumers; checkpoints and marks read single entries); create, read and
// write the lease bucket <stream>_leader (its key "leader"), after the account information that creating a bucket
// asks for; create, check, purge and delete the catch-up mirror <stream>_catchup; publish its pressure reports;
// receive replies, follower heartbeats and pressure reports (another leader's, while this one follows it). It may not
// publish heartbeats, touch any other stream or bucket, or write anything else.
func LeaderPermissions(stream string) Permissions {
	bucket := leaseBucket(stream)
	kv, mirror := kvStream(bucket), mirrorName(stream)
	pub := []string{
		logSubject(stream),
		pressureSubject(stream),
		"$KV." + bucket + "." + leaseKey,
		jsAPI + "INFO",
		jsAPI + "STREAM.CREATE." + stream,
		jsAPI + "STREAM.INFO." + stream,
		jsAPI + "STREAM.UPDATE." + stream,
		jsAPI + "STREAM.PURGE." + stream,
		jsAPI + "STREAM.MSG.GET." + stream,
	}
	pub = append(pub, consumerSubjects(stream)...)
	pub = append(pub,
		jsAPI+"STREAM.CREATE."+kv,
		jsAPI+"STREAM.INFO."+kv,
		jsAPI+"STREAM.UPDATE."+kv,
		jsAPI+"DIRECT.GET."+kv+".$KV."+bucket+"."+leaseKey,
		jsAPI+"STREAM.CREATE."+mirror,
		jsAPI+"STREAM.INFO."+mirror,
		jsAPI+"STREAM.PURGE."+mirror,
		jsAPI+"STREAM.DELETE."+mirror,
	)
	return Permissions{Publish: pub, Subscribe: []string{inboxSubjects, heartbeatSubject(stream), pressureSubject(stream)}}
}

// FollowerPermissions is what a follower's NATS user needs for the log stream named stream, and no more: read the
// log (stream information, single entries, ordered consumers) and its catch-up mirror (stream information, ordered
// consumers), read the lease (to find the leader that writes are redirected to), publish heartbeats, receive
// replies and the leader's pressure reports (which pace catching up). It cannot publish to the log, write the lease,
// create, change, purge or delete any stream, publish pressure reports, or receive other followers' heartbeats.
// Heartbeats are not signed: a holder of these credentials can still send one in another follower's name (see
// docs/security.md).
func FollowerPermissions(stream string) Permissions {
	bucket := leaseBucket(stream)
	kv, mirror := kvStream(bucket), mirrorName(stream)
	pub := []string{
		heartbeatSubject(stream),
		jsAPI + "STREAM.INFO." + stream,
		jsAPI + "STREAM.MSG.GET." + stream,
	}
	pub = append(pub, consumerSubjects(stream)...)
	pub = append(pub, jsAPI+"STREAM.INFO."+mirror)
	pub = append(pub, consumerSubjects(mirror)...)
	pub = append(pub,
		jsAPI+"STREAM.INFO."+kv,
		jsAPI+"DIRECT.GET."+kv+".$KV."+bucket+"."+leaseKey,
	)
	return Permissions{Publish: pub, Subscribe: []string{inboxSubjects, pressureSubject(stream)}}
}

// User is a NATS user of the embedded server: a name, a password and what it may do.
type User struct {
	// Name is the user name: 1..256 bytes, printable, no spaces.
	Name string
	// Password is the user's password, 1..1024 bytes. Never logged.
	Password string
	// Permissions are the user's allow lists; both must hold at least one subject.
	Permissions Permissions
}

// maxUserName and maxPassword bound a NATS user's name and password.
const (
	maxUserName = 256
	maxPassword = 1024
)

// ValidateUserName checks a NATS user name: 1..256 bytes of printable characters, no spaces. It returns an error
// wrapping ErrMalformed otherwise.
func ValidateUserName(name string) error {
	if len(name) == 0 || len(name) > maxUserName {
		return fmt.Errorf("%w: user name length %d, want 1..%d", ErrMalformed, len(name), maxUserName)
	}
	if strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return fmt.Errorf("%w: user name %q has a space or an unprintable character", ErrMalformed, name)
	}
	return nil
}

// validateUsers checks the users of an embedded server: valid distinct names, passwords, non-empty allow lists. Its
// errors never contain a password.
func validateUsers(users []User) error {
	for i, u := range users {
		if err := ValidateUserName(u.Name); err != nil {
			return err
		}
		if len(u.Password) == 0 || len(u.Password) > maxPassword {
			return fmt.Errorf("%w: user %q: password length %d, want 1..%d", ErrMalformed, u.Name, len(u.Password),
				maxPassword)
		}
		if len(u.Permissions.Publish) == 0 || len(u.Permissions.Subscribe) == 0 {
			return fmt.Errorf("%w: user %q: empty publish or subscribe allow list", ErrMalformed, u.Name)
		}
		if slices.ContainsFunc(users[:i], func(o User) bool { return o.Name == u.Name }) {
			return fmt.Errorf("%w: user %q appears twice", ErrMalformed, u.Name)
		}
	}
	return nil
}
