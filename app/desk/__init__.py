"""The desk: the fact-checkers' dashboard, server-rendered pages served by the app at `/`."""
