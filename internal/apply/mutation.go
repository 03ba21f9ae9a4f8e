package apply

// Mutation is one change to the store. Version is the log sequence of the entry that made it, which becomes the
// key's version. Value is nil when Delete is set.
type Mutation struct {
	Key     []byte
	Value   []byte
	Version uint64
	Delete  bool
}

// ToMutation turns the entry at log sequence seq into the mutation it makes. e must be a put or a delete (see
// Entry.Mutates): a checkpoint makes none. It copies nothing: the mutation aliases the entry's slices.
func ToMutation(seq uint64, e Entry) Mutation {
	if e.Op == OpDelete {
		return Mutation{Key: e.Key, Version: seq, Delete: true}
	}
	return Mutation{Key: e.Key, Value: e.Value, Version: seq}
}
