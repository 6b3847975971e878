"""The server process: the ASGI entry point, uvicorn's header deadline, heap settling."""
