"""Worker: consume the stream, guard ordering, apply to the sink, dead-letter what fails."""
