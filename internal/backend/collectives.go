package backend

// The operand checks of CollectiveDevice and Collectives, shared by the devices that implement them.

// CheckJoinCollectives checks the rank and group size given to CollectiveDevice.JoinCollectives.
func CheckJoinCollectives(rank, world int) error {
	k := checker{op: "JoinCollectives"}
	switch {
	case world < 1:
		k.failf("a group of %d ranks; want at least 1", world)
	case rank < 0 || rank >= world:
		k.failf("rank %d is not one of the group's %d ranks (0..%d)", rank, world, world-1)
	}
	return k.err
}

// CheckAllReduceSum checks the operands of Collectives.AllReduceSum: an F32 tensor and a range of its
// values.
func CheckAllReduceSum(t Tensor, offset, count int) error {
	k := checker{op: "AllReduceSum"}
	k.typed("t", t, F32)
	if n := t.Numel(); k.err == nil && (offset < 0 || count < 0 || offset > n-count) {
		k.failf("values [%d, %d) are not inside t %v, which holds %d", offset, offset+count, t.Shape, n)
	}
	return k.err
}

// CheckBroadcast checks the operands of Collectives.Broadcast in a group of world ranks.
func CheckBroadcast(t Tensor, root, world int) error {
	k := checker{op: "Broadcast"}
	k.typed("t", t, F32)
	if k.err == nil && (root < 0 || root >= world) {
		k.failf("root %d is not one of the group's %d ranks (0..%d)", root, world, world-1)
	}
	return k.err
}
