"""The ASGI app uvicorn serves, built from the environment's settings."""

import contextlib
import ctypes

from app.main import create_app

# glibc gives threads malloc arenas of their own, up to eight per core; a worker's 40
# threads each filled and fragmented one, ~15 MB of its resident memory under a mixed load
# at 1,000,000 claims (bench P6: 164 -> 149 MiB). Two arenas: set here, in each worker
# before its threads start (MALLOC_ARENA_MAX is read only at process start).
M_ARENA_MAX = -8
with contextlib.suppress(OSError, AttributeError, TypeError):
    ctypes.CDLL(None).mallopt(M_ARENA_MAX, 2)  # libc, already loaded

app = create_app(served=True)
