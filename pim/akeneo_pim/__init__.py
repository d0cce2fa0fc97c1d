"""Everything that speaks Akeneo: event formats, signatures, REST client, PIM simulator."""
