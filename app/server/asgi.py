"""The ASGI app uvicorn serves, built from the environment's settings."""

import contextlib
import ctypes

from app.main import create_app

# glibc gives threads malloc arenas of their own, up to eight per core; a worker's 40
# threads each filled and fragmented one (bench P6; bench/RESULTS.md, "Two malloc
# arenas"). Two arenas: set here, in each worker before its threads start
# (MALLOC_ARENA_MAX is read only at process start).
M_ARENA_MAX = -8
with contextlib.suppress(OSError, AttributeError, TypeError):
    ctypes.CDLL(None).mallopt(M_ARENA_MAX, 2)  # libc, already loaded

app = create_app(served=True)
