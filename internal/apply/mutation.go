package apply

// Mutation is one change to the store. Version is the log sequence of the entry that made it, which becomes the
// key's version. Value is nil when Delete is set. A mutation whose Idem.Key is not empty stores that idempotency
// record instead, with Version as the write's result; its Key, Value and Delete are unused.
type Mutation struct {
	Key     []byte
	Value   []byte
	Version uint64
	Delete  bool
	Idem    Idem
}

// ToMutation turns the entry at log sequence seq into the mutation it makes. e must be a put or a delete: a
// checkpoint makes none, a transaction several (see AppendMutations). It copies nothing: the mutation aliases the
// entry's slices.
func ToMutation(seq uint64, e Entry) Mutation {
	if e.Op == OpDelete {
		return Mutation{Key: e.Key, Version: seq, Delete: true}
	}
	return Mutation{Key: e.Key, Value: e.Value, Version: seq}
}

// AppendMutations appends to dst the mutations the entry at log sequence seq makes and returns the extended slice:
// one for a put or a delete, one per operation of a transaction (every one at version seq), none for a checkpoint,
// and one more storing its idempotency record when it carries one. It copies nothing: the mutations alias the
// entry's slices. A store that applies them in one batch applies a transaction, and a write with its record,
// atomically.
func AppendMutations(dst []Mutation, seq uint64, e Entry) []Mutation {
	switch e.Op {
	case OpPut, OpDelete:
		dst = append(dst, ToMutation(seq, e))
	case OpTxn:
		for _, o := range e.Ops {
			dst = append(dst, ToMutation(seq, Entry{Op: o.Op, Key: o.Key, Value: o.Value}))
		}
	default:
		return dst
	}
	if len(e.Idem.Key) > 0 {
		dst = append(dst, Mutation{Version: seq, Idem: e.Idem})
	}
	return dst
}
