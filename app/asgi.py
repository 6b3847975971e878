"""The ASGI app uvicorn serves, built from the environment's settings."""

from app.main import create_app

app = create_app()
