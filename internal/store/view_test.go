package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/apply"
)

func viewTest(t *testing.T, db *DB) *View {
	t.Helper()
	v, err := db.View()
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func TestDB_View(t *testing.T) {
	db := openTest(t, t.TempDir())
	empty := viewTest(t, db)
	mustApply(t, db, 1, put("a", "1", 1))
	v1 := viewTest(t, db)
	mustApply(t, db, 2, put("a", "2", 2), put("b", "x", 2))
	mustApply(t, db, 3, del("b", 3))
	v3 := viewTest(t, db)

	tests := []struct {
		name  string
		v     *View
		seq   uint64
		wants []want
	}{
		{"Empty", empty, 0, []want{{"a", "", 0, false}}},
		{"BeforeApply", v1, 1, []want{{"a", "1", 1, true}, {"b", "", 0, false}}},
		{"Latest", v3, 3, []want{{"a", "2", 2, true}, {"b", "", 0, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.v.Seq() != tt.seq {
				t.Fatalf("Seq = %d, want %d", tt.v.Seq(), tt.seq)
			}
			checkState(t, tt.v, tt.wants)
		})
	}
}

func TestView_Close(t *testing.T) {
	db := openTest(t, t.TempDir())
	v, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := v.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := v.Get([]byte("a")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
}

func TestView_List(t *testing.T) {
	db := openTest(t, t.TempDir())
	var muts []apply.Mutation
	for _, k := range []string{"a", "a/1", "a/2", "a/3", "a\xff", "ab", "b", "b/1", "\u00e9"} {
		muts = append(muts, put(k, "v:"+k, 1))
	}
	mustApply(t, db, 1, muts...)
	mustApply(t, db, 2, del("a/2", 2))
	v := viewTest(t, db)

	tests := []struct {
		name          string
		prefix, after string
		limit         int
		keys          []string
		next          string
	}{
		{"All", "", "", 100, []string{"a", "a/1", "a/3", "ab", "a\xff", "b", "b/1", "\u00e9"}, ""},
		{"Prefix", "a/", "", 100, []string{"a/1", "a/3"}, ""},
		{"PrefixIncludesItself", "b", "", 100, []string{"b", "b/1"}, ""},
		{"PrefixWithFF", "a\xff", "", 100, []string{"a\xff"}, ""},
		{"PrefixNone", "c", "", 100, nil, ""},
		{"Limit", "", "", 2, []string{"a", "a/1"}, "a/1"},
		{"LimitExact", "a/", "", 2, []string{"a/1", "a/3"}, ""},
		{"After", "", "a/3", 3, []string{"ab", "a\xff", "b"}, "b"},
		{"AfterMissingKey", "a/", "a/2", 10, []string{"a/3"}, ""},
		{"AfterBeforePrefix", "b", "a", 10, []string{"b", "b/1"}, ""},
		{"AfterPastPrefix", "a/", "b", 10, nil, ""},
		{"AfterLast", "", "\u00e9", 10, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, next, err := v.List([]byte(tt.prefix), []byte(tt.after), tt.limit, false)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			var keys []string
			for _, it := range items {
				keys = append(keys, string(it.Key))
				if it.Value != nil || it.Version != 1 {
					t.Errorf("item %q = version %d, value %q; want 1 and no value", it.Key, it.Version, it.Value)
				}
			}
			if strings.Join(keys, ",") != strings.Join(tt.keys, ",") || string(next) != tt.next {
				t.Fatalf("List = %q next %q, want %q next %q", keys, next, tt.keys, tt.next)
			}
			if tt.next == "" && next != nil {
				t.Fatalf("next = %q (non-nil) on the last page", next)
			}
		})
	}

	t.Run("Values", func(t *testing.T) {
		items, _, err := v.List([]byte("a/"), nil, 10, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 2 || string(items[0].Value) != "v:a/1" || string(items[1].Value) != "v:a/3" {
			t.Fatalf("List with values = %+v", items)
		}
	})
	t.Run("BadLimit", func(t *testing.T) {
		if _, _, err := v.List(nil, nil, 0, false); err == nil {
			t.Fatal("List with limit 0 succeeded")
		}
	})
}

func TestView_List_Pagination(t *testing.T) {
	db := openTest(t, t.TempDir())
	var muts []apply.Mutation
	for i := range 250 {
		muts = append(muts, put(fmt.Sprintf("p/%04d", i), "v", uint64(i+1)))
	}
	muts = append(muts, put("q", "other", 1))
	mustApply(t, db, 300, muts...)
	v := viewTest(t, db)
	for _, limit := range []int{1, 7, 50, 250, 1000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			var after []byte
			n, pages := 0, 0
			for {
				items, next, err := v.List([]byte("p/"), after, limit, false)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, it := range items {
					if want := fmt.Sprintf("p/%04d", n); string(it.Key) != want || it.Version != uint64(n+1) {
						t.Fatalf("item %d = %q v%d, want %q v%d", n, it.Key, it.Version, want, n+1)
					}
					n++
				}
				if next == nil {
					break
				}
				after = next
			}
			if n != 250 || pages != (250+limit-1)/limit {
				t.Fatalf("paged %d keys in %d pages, want 250 in %d", n, pages, (250+limit-1)/limit)
			}
		})
	}
}

func TestView_Iterate(t *testing.T) {
	db := openTest(t, t.TempDir())
	mustApply(t, db, 3, put("b", "2", 2), put("a", "1", 1), put("c", "3", 3))
	v := viewTest(t, db)
	t.Run("Order", func(t *testing.T) {
		var got []string
		err := v.Iterate(func(key, value []byte, version uint64) error {
			got = append(got, fmt.Sprintf("%s=%s@%d", key, value, version))
			return nil
		})
		if err != nil || strings.Join(got, " ") != "a=1@1 b=2@2 c=3@3" {
			t.Fatalf("Iterate = %v, %v", got, err)
		}
	})
	t.Run("StopsOnError", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := v.Iterate(func(key, _ []byte, _ uint64) error {
			calls++
			if string(key) == "b" {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != 2 {
			t.Fatalf("Iterate = %v after %d calls, want stop after 2", err, calls)
		}
	})
	t.Run("NestedGet", func(t *testing.T) {
		err := v.Iterate(func(key, value []byte, _ uint64) error {
			got, _, err := v.Get(key)
			if err != nil || string(got) != string(value) {
				return fmt.Errorf("nested Get(%q) = %q, %v", key, got, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestView_Digest(t *testing.T) {
	// Expected values computed outside Go (printf ... | sha256sum), see apply's digest tests.
	tests := []struct {
		name string
		muts [][]apply.Mutation
		keys uint64
		want string
	}{
		{"Empty", nil, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"One", [][]apply.Mutation{{put("a", "b", 1)}}, 1, "431a8f04a98b9f2054def1c018afc650199f9dc5f30e48053e15ba64e062e0ff"},
		{"DeletedKeysIgnored", [][]apply.Mutation{{put("bc", "", 300), put("a", "b", 5), put("zz", "gone", 1)},
			{del("zz", 301)}}, 2, "b6c6340cc4663db84da8ea28e2a32fef750ebaf701b65fe0aba03434210a3081"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, t.TempDir())
			for i, muts := range tt.muts {
				mustApply(t, db, uint64(i+1), muts...)
			}
			keys, digest, err := viewTest(t, db).Digest()
			if err != nil || keys != tt.keys || digest != tt.want {
				t.Fatalf("Digest = %d, %s, %v; want %d, %s", keys, digest, err, tt.keys, tt.want)
			}
		})
	}
}

// TestView_ConcurrentApply checks that views stay consistent while the writer runs: every batch sets every key to
// the batch's sequence, so a view must show one sequence everywhere, equal to its Seq.
func TestView_ConcurrentApply(t *testing.T) {
	db := openTest(t, t.TempDir())
	const nkeys, batches = 50, 300
	batch := func(seq uint64) []apply.Mutation {
		muts := make([]apply.Mutation, nkeys)
		for i := range muts {
			muts[i] = put(fmt.Sprintf("k%02d", i), fmt.Sprint(seq), seq)
		}
		return muts
	}
	mustApply(t, db, 1, batch(1)...)
	early := viewTest(t, db)

	var wg sync.WaitGroup
	writerErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := uint64(2); seq <= batches; seq++ {
			if err := db.Apply(seq, batch(seq), apply.Mark{}); err != nil {
				writerErr <- err
				return
			}
		}
	}()
	t.Cleanup(wg.Wait)

	check := func(v *View) error {
		n := 0
		err := v.Iterate(func(key, value []byte, version uint64) error {
			n++
			if version != v.Seq() || string(value) != fmt.Sprint(v.Seq()) {
				return fmt.Errorf("view at %d shows %s=%s@%d", v.Seq(), key, value, version)
			}
			return nil
		})
		if err == nil && n != nkeys {
			err = fmt.Errorf("view at %d has %d keys, want %d", v.Seq(), n, nkeys)
		}
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for seen := uint64(0); seen < batches; {
		if time.Now().After(deadline) {
			t.Fatalf("writer did not finish; last view at %d", seen)
		}
		select {
		case err := <-writerErr:
			t.Fatalf("Apply: %v", err)
		default:
		}
		v, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		err = check(v)
		seen = v.Seq()
		_ = v.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := check(early); err != nil {
			t.Fatalf("early view: %v", err)
		}
	}
	if early.Seq() != 1 {
		t.Fatalf("early view Seq = %d, want 1", early.Seq())
	}
}
