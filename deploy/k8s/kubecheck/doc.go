// Package kubecheck holds, in a module of its own, the test that checks
// vigil's Kubernetes manifests against the Kubernetes API: its
// dependencies (k8s.io/api, the API's OpenAPI document) stay out of
// vigil's go.mod and binary.
package kubecheck
