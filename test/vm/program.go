package vm

import (
	"context"
	"fmt"
)

// AddProgram adds the dynamically linked host program at host to files
// (a Spec.Files map) as guest, together with every shared library and the
// loader that ldd names, at their host paths, where the guest's loader
// looks for them. Tests use it for tools such as ipvsadm that are not in
// the base image.
func AddProgram(ctx context.Context, files map[string]string, guest, host string) error {
	t, err := findTools()
	if err != nil {
		return err
	}
	libs, err := sharedLibs(ctx, t.ldd, host)
	if err != nil {
		return fmt.Errorf("vm: add %s: %w", host, err)
	}
	files[guest] = host
	for _, l := range libs {
		files[l] = l
	}
	return nil
}
