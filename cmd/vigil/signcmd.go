package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"vigil/config"
)

// vigil config keygen and vigil config sign (issue 14): ed25519 keys and
// detached signatures of fleet documents, checked by nodes whose local
// file lists trusted keys (fleet.trusted_keys).

func newConfigKeygenCmd() *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen --out PATH [--force]",
		Short: "Create an ed25519 key pair for signing fleet documents",
		Long: `Create an ed25519 key pair for signing fleet documents: the private key in
PATH (mode 0600; keep it off the directors) and the public key in PATH.pub.
Nodes that list the public key in their own file's fleet: section
(trusted_keys: [vigil-ed25519-pub:...], or trusted_keys_file: PATH.pub) take and
apply only fleet documents signed by it (vigil config sign). An existing file
is never replaced without --force.

Exit status: 0 written, 1 not written, 2 usage error.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return flagUsageError(cmd, errors.New("--out PATH is required"))
			}
			id, err := config.WriteSigningKey(out, force, nil)
			if err != nil {
				return &exitError{code: 1, msg: "vigil config keygen: " + err.Error()}
			}
			pubs, err := config.ReadPublicKeys(out + ".pub")
			if err != nil {
				return &exitError{code: 1, msg: "vigil config keygen: " + err.Error()}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the private key %s and the public key %s.pub (key %s)\ntrust it in each node's file:\n  fleet:\n    trusted_keys: [%s]\n",
				out, out, id, config.PublicKeyLine(pubs[0]))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the private key's file (the public key goes to FILE.pub)")
	cmd.Flags().BoolVar(&force, "force", false, "replace existing key files")
	cmd.SetFlagErrorFunc(flagUsageError)
	return cmd
}

func newConfigSignCmd() *cobra.Command {
	var key, out string
	cmd := &cobra.Command{
		Use:   "sign --key PRIVATE FILE [-o SIG]",
		Short: "Sign a fleet document (a detached ed25519 signature, FILE.sig)",
		Long: `Sign the fleet document FILE with the private key PRIVATE (vigil config keygen):
the signature covers FILE's exact bytes and is written to SIG (default FILE.sig),
which vigil config push FILE sends along. Any change to FILE after signing,
even of white space, makes nodes with trusted keys refuse it.

Exit status: 0 signed, 1 not signed, 2 usage error.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return flagUsageError(cmd, errors.New("--key PRIVATE is required"))
			}
			doc, err := config.ReadFile(args[0])
			if err != nil {
				return &exitError{code: 1, msg: "vigil config sign: " + err.Error()}
			}
			priv, err := config.ReadSigningKey(key)
			if err != nil {
				return &exitError{code: 1, msg: "vigil config sign: " + err.Error()}
			}
			if out == "" {
				out = args[0] + ".sig"
			}
			sig := config.SignDocument(priv, doc)
			if err := os.WriteFile(out, config.FormatSignature(sig, doc), 0o644); err != nil {
				return &exitError{code: 1, msg: "vigil config sign: " + err.Error()}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s (sha256 %s) with key %s: %s\n", args[0], shortHash(config.DocumentHash(doc)), signer(sig), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the private key's file (vigil config keygen --out)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "the signature's file (default FILE.sig)")
	cmd.SetFlagErrorFunc(flagUsageError)
	return cmd
}

// signer is the key id a signature names.
func signer(sig string) string {
	pub, _, err := config.ParseSignature(sig)
	if err != nil {
		return "?"
	}
	return config.KeyID(pub)
}

// pushSignature is the signature vigil config push sends with the document
// doc read from path: the file given by --signature, else path.sig when it
// exists, else none; with unsigned, none. A signature that is not one of
// doc is refused here, before the daemon does.
func pushSignature(path string, doc []byte, sigFile string, unsigned bool) (string, error) {
	switch {
	case unsigned && sigFile != "":
		return "", errors.New("--unsigned and --signature contradict each other")
	case unsigned:
		return "", nil
	}
	given := sigFile != ""
	if !given {
		sigFile = path + ".sig"
	}
	sig, err := config.ReadSignature(sigFile)
	switch {
	case !given && errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", err
	}
	if _, err := config.CheckSignature(doc, sig); err != nil {
		return "", fmt.Errorf("%s: %w: it was made for another version of %s (sign it again: vigil config sign)", sigFile, err, path)
	}
	return sig, nil
}
