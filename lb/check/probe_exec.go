package check

import (
	"context"
	"fmt"

	"vigil/internal/proc"
)

type execProber struct{ s Spec }

func (p execProber) probe(ctx context.Context) outcome {
	r := proc.Run(ctx, proc.Cmd{Argv: p.s.Argv, User: p.s.User})
	o := outcome{detail: r.Detail()}
	switch {
	case r.StartErr != nil:
		o.result = Error
	case r.TimedOut || ctx.Err() != nil:
		// The context carries Spec.Timeout; a killed script changes no
		// weight (keepalived #2720 counted one).
		o.result = Timeout
		o.detail = fmt.Sprintf("timeout after %v, process group killed", p.s.Timeout)
	case !r.Exited():
		o.result = Failure
	default:
		o.result, o.weight, o.setWeight = miscDynamic(r.Exit, p.s.Dynamic)
	}
	return o
}

// miscDynamic maps an exit status as keepalived's MISC_CHECK does: 0 up,
// anything else down; with misc_dynamic, 0 up, 1 down, 2-255 up with the
// real server's weight set to status-2.
func miscDynamic(status int, dynamic bool) (Result, int, bool) {
	switch {
	case status == 0:
		return Success, 0, false
	case !dynamic || status == 1 || status < 0 || status > 255:
		return Failure, 0, false
	}
	return Success, status - 2, true
}
