// Package deploy holds gpt2d's deployment files — the systemd unit, a
// Compose file running several replicas on one PostgreSQL behind nginx,
// nginx's configuration and Kubernetes manifests — and the tests that keep
// them true to the binary: they parse every YAML document, check each
// variable, flag, probe, port, Secret key and volume against the built
// `gpt2d`, run `nginx -t` on the load balancer's configuration, and run
// that nginx in front of two replicas to check the client address they see.
// It has no Go code of its own.
package deploy
