package policy

// Member is one sync-group member as the group logic sees it.
type Member struct {
	Name  string
	State string // init, backup, master, fault
	// OwnFault: the member's own trackers or interface hold it in FAULT
	// (a member can also be in FAULT only because of the group).
	OwnFault bool
}

// Move is what a member must do to follow its group.
type Move struct {
	Name string
	To   string // "master", "backup", "fault" or "unfault" (leave a group-held FAULT)
}

// SyncGroup returns the moves that keep a keepalived-style vrrp_sync_group
// together after member changed from one state to another:
//   - any member in its own FAULT holds every member in FAULT;
//   - when none is, members held in FAULT only by the group leave it;
//   - a member becoming master pulls the backups to master;
//   - a master stepping down to backup takes the other masters with it.
//
// Moves are idempotent, so applying them (which may change states again and
// call SyncGroup again) settles.
func SyncGroup(members []Member, changed, from, to string) []Move {
	var moves []Move
	groupFault := false
	for _, m := range members {
		groupFault = groupFault || m.OwnFault
	}
	for _, m := range members {
		switch {
		case groupFault && m.State != "fault" && m.State != "init":
			moves = append(moves, Move{m.Name, "fault"})
		case !groupFault && m.State == "fault":
			moves = append(moves, Move{m.Name, "unfault"})
		}
	}
	if groupFault || len(moves) > 0 {
		return moves
	}
	for _, m := range members {
		if m.Name == changed {
			continue
		}
		switch {
		case to == "master" && m.State == "backup":
			moves = append(moves, Move{m.Name, "master"})
		case from == "master" && to == "backup" && m.State == "master":
			moves = append(moves, Move{m.Name, "backup"})
		}
	}
	return moves
}
