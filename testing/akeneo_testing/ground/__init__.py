"""The test ground: real servers (nats-server, etcd, kube-apiserver, ...) started by the tests."""
