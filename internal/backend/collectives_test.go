package backend

import "testing"

func TestCollectiveChecks(t *testing.T) {
	freed := f32(8)
	freed.Buf.(*hostBuffer).freed = true
	cases := []struct {
		name string
		err  error
		want string // "" for no error
	}{
		{"join one rank", CheckJoinCollectives(0, 1), ""},
		{"join last rank", CheckJoinCollectives(3, 4), ""},
		{"join empty group", CheckJoinCollectives(0, 0), "JoinCollectives: a group of 0 ranks; want at least 1"},
		{"join rank too large", CheckJoinCollectives(2, 2), "JoinCollectives: rank 2 is not one of the group's 2 ranks (0..1)"},
		{"join negative rank", CheckJoinCollectives(-1, 2), "JoinCollectives: rank -1 is not one of the group's 2 ranks (0..1)"},
		{"all-reduce all", CheckAllReduceSum(f32(2, 4), 0, 8), ""},
		{"all-reduce nothing at the end", CheckAllReduceSum(f32(8), 8, 0), ""},
		{"all-reduce past the end", CheckAllReduceSum(f32(8), 4, 5), "AllReduceSum: values [4, 9) are not inside t [8], which holds 8"},
		{"all-reduce negative offset", CheckAllReduceSum(f32(8), -1, 2), "AllReduceSum: values [-1, 1) are not inside t [8], which holds 8"},
		{"all-reduce negative count", CheckAllReduceSum(f32(8), 2, -1), "AllReduceSum: values [2, 1) are not inside t [8], which holds 8"},
		{"all-reduce int32", CheckAllReduceSum(i32(8), 0, 8), "AllReduceSum: t is i32, want f32"},
		{"all-reduce freed", CheckAllReduceSum(freed, 0, 8), "AllReduceSum: t was freed"},
		{"broadcast", CheckBroadcast(f32(3), 1, 2), ""},
		{"broadcast root too large", CheckBroadcast(f32(3), 2, 2), "Broadcast: root 2 is not one of the group's 2 ranks (0..1)"},
		{"broadcast int32", CheckBroadcast(i32(3), 0, 1), "Broadcast: t is i32, want f32"},
	}
	for _, c := range cases {
		got := ""
		if c.err != nil {
			got = c.err.Error()
		}
		if got != c.want {
			t.Errorf("%s: error %q, want %q", c.name, got, c.want)
		}
	}
}
