"""Fast paths, each earning its keep on a bench row: group commit and the writer process,
the read cache, bulk inserts."""
