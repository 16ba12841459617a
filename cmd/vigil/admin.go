package main

import (
	"context"
	"log/slog"

	"github.com/spf13/cobra"

	"vigil/node"
	"vigil/node/api"
)

// adminGroup is vigil run's --admin-group (addAdminFlags); listenAdmin
// reads it.
var adminGroup string

// addAdminFlags declares the admin socket's flags of vigil run besides
// --admin-socket.
func addAdminFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&adminGroup, "admin-group", "",
		`group whose members may use the admin socket (vigil status, config reload): the socket becomes 0660 with this group (default: 0600, root and the daemon's user only)`)
}

// adminServer is the daemon's side of `vigil status`: the admin API on a
// unix socket. A nil *adminServer (the API disabled) does nothing.
type adminServer struct {
	srv    *api.Server
	log    *slog.Logger
	served bool
	done   chan struct{}
}

// listenAdmin binds the admin socket, or returns nil when path is "". It is
// called before node.New so that a second vigil started by mistake stops
// here ("another vigil is running") before it touches the addresses of the
// running one.
func listenAdmin(path string, log *slog.Logger) (*adminServer, error) {
	if path == "" {
		log.Info("admin API disabled (--admin-socket \"\"): vigil status will not reach this daemon")
		return nil, nil
	}
	srv, err := api.ListenWith(path, log, api.Options{Group: adminGroup})
	if err != nil {
		return nil, err
	}
	return &adminServer{srv: srv, log: log, done: make(chan struct{})}, nil
}

// serve answers on the socket until close is called: status stays
// available while the node stops gracefully, and the socket goes away
// just before the process exits.
func (a *adminServer) serve(n *node.Node, reload func(context.Context) (any, error)) {
	if a == nil {
		return
	}
	a.served = true
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(context.Background(), api.Handlers{Status: n, Reload: reload, Fleet: n}); err != nil {
			a.log.Error("admin API stopped", "err", err)
		}
	}()
}

// close stops the API and removes the socket; it returns once both are done.
func (a *adminServer) close() {
	if a == nil {
		return
	}
	a.srv.Close()
	if a.served {
		<-a.done
	}
}
