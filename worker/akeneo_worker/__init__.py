"""Worker: consume the stream, guard ordering, apply to the sink; reconcile and replay jobs."""
