"""The receiver fixtures (real TLS, real nats-server), shared with the receiver's own tests."""

from tests.integration.receiver.conftest import ca, start_receiver

__all__ = ["ca", "start_receiver"]
